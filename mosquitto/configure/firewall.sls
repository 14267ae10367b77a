# -*- coding: utf-8 -*-
# vim: ft=sls
# ssh (22), MQTT over TLS and the exporter open in the pillar's zone,
# permanently. firewall:mode exclusive (the default): exactly those, every
# other port, service, rich rule, protocol, source and forward port is
# pruned, then firewalld reloads. firewall:mode shared: only added, nothing
# anyone else put in the zone is removed, no reload. What the formula added
# is recorded (lookup:paths:firewall_record) so clean.sls removes only that.
# Plain MQTT (1883) is never opened. It reads firewalld over D-Bus
# (busctl): a converged host runs no firewall-cmd.
#   firewall:enabled: true   firewalld installed, enabled, started, managed
#   firewall:enabled: auto   managed where firewalld already runs, else a note
#   firewall:enabled: false  left alone, with a note
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set fw = mosquitto.firewall %}
{#- Asked only for `auto` (one D-Bus call per run, shared with runtime/firewall.sls). #}
{%- set running = fw.enabled == 'auto' and salt['mosquitto_firewall.running']() %}
{%- set ports = [mosquitto.ports.mqtts ~ '/tcp'] %}
{%- if mosquitto.exporter.enabled %}
{%-   do ports.append(mosquitto.ports.exporter ~ '/tcp') %}
{%- endif %}

{%- if fw.enabled is sameas true or (fw.enabled == 'auto' and running) %}
include:
  - {{ tplroot }}.build.firewall

{%-   if fw.enabled is sameas true %}

{#- Configuring needs a running firewalld (firewall-cmd talks to it). #}
mosquitto-configure-firewall-service-running:
  mosquitto_service.running:
    - name: {{ mosquitto.service.firewall_name }}
    - enable: True
    - require:
      - sls: {{ tplroot }}.build.firewall
    - require_in:
      - mosquitto_firewall: mosquitto-configure-firewall-zone-present

{%-     if salt['config.get']('file_client') != 'local' %}

{#- firewalld starting under a running minion: conntrack then meets the
    minion's connection to the master's publish port mid-stream, the
    master's packets count as invalid and are dropped, and the minion hears
    no jobs until TCP keepalive gives up (minutes; seen on Debian 12).
    Destroying that socket makes the minion reconnect at once, tracked. #}
mosquitto-configure-firewall-master-reconnected:
  cmd.run:
    - name: ss -K state established '( dport = :{{ salt['config.get']('publish_port', 4505) }} )'
    - onchanges:
      - mosquitto_service: mosquitto-configure-firewall-service-running
{%-     endif %}
{%-   endif %}

mosquitto-configure-firewall-zone-present:
  mosquitto_firewall.zone_present:
    - name: {{ fw.zone }}
    - services: {{ (['ssh'] if fw.ssh else []) | json }}
    - ports: {{ (ports + fw.extra_ports) | json }}
    - mode: {{ fw.mode }}
    - record: {{ mosquitto.paths.firewall_record }}
{%- else %}

mosquitto-configure-firewall-unmanaged:
  test.show_notification:
    - text: >-
        No firewall managed: {{ 'firewall:enabled is false in pillar'
        if fw.enabled is sameas false else 'firewalld is not running here (firewall:enabled auto)' }}.
        Open {{ ports | join(', ') }} yourself; keep {{ mosquitto.ports.mqtt }}/tcp closed.
{%- endif %}

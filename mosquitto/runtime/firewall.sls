# -*- coding: utf-8 -*-
# vim: ft=sls
# The playbook's "reload the firewall": where the running zone drifted from
# the wanted ports and services (someone ran firewall-cmd without
# --permanent), reload so exactly the managed ports are open. The check is
# one D-Bus read (mosquitto_firewall.reloaded): no reload, no firewall-cmd,
# when nothing drifted.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set fw = mosquitto.firewall %}
{%- set running = fw.enabled == 'auto' and salt['mosquitto_firewall.running']() %}
{%- set ports = [mosquitto.ports.mqtts ~ '/tcp'] %}
{%- if mosquitto.exporter.enabled %}
{%-   do ports.append(mosquitto.ports.exporter ~ '/tcp') %}
{%- endif %}

{%- if fw.enabled is sameas true or (fw.enabled == 'auto' and running) %}
include:
  - {{ tplroot }}.configure.firewall

mosquitto-runtime-firewall-reloaded:
  mosquitto_firewall.reloaded:
    - name: {{ fw.zone }}
    - services: {{ (['ssh'] if fw.ssh else []) | json }}
    - ports: {{ (ports + fw.extra_ports) | json }}
    - mode: {{ fw.mode }}
    - require:
      - sls: {{ tplroot }}.configure.firewall
{%- endif %}

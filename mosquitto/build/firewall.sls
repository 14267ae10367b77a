# -*- coding: utf-8 -*-
# vim: ft=sls
# firewalld itself, only with firewall:enabled: true (auto manages a
# firewalld that is already running and installs nothing).
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{%- if mosquitto.firewall.enabled is sameas true %}
mosquitto-build-firewall-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.firewall }}
{%-   if salt['config.get']('file_client') != 'local' %}

{#- Debian's package starts firewalld as it installs it: the minion's
    connection to the master's publish port then goes deaf (conntrack, see
    configure/firewall.sls) and a CA minion misses its peers' signing
    requests for the rest of its run. Reconnect at once. #}
mosquitto-build-firewall-master-reconnected:
  cmd.run:
    - name: ss -K state established '( dport = :{{ salt['config.get']('publish_port', 4505) }} )'
    - onchanges:
      - pkg: mosquitto-build-firewall-pkg-installed
{%-   endif %}
{%- endif %}

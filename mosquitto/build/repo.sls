# -*- coding: utf-8 -*-
# vim: ft=sls
# RedHat: mosquitto and the exporter's Python libraries come from EPEL.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{%- if mosquitto.pkg.repo %}
mosquitto-build-repo-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.repo }}
{%- endif %}

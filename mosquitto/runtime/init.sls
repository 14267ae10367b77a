# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
include:
  # Applied alone, this phase brings the configuration it runs with.
  - {{ tplroot }}.configure
  # The broker as the host's service, or in a container (container:enabled).
  - .{{ 'container' if mosquitto.container.enabled else 'service' }}
  - .certificate
  - .renewal
  - .exporter
  - .firewall
  - .cluster

# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{#- map.jinja's dict, from the run's first import of it (map.jinja): Salt
    would fetch and compile map.jinja again for every SLS file. #}
{%- set mosquitto = salt['mosquitto_mapdata.cached']() if 'mosquitto_mapdata.cached' in salt else none %}
{%- if mosquitto is none %}
{%-   from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
{%- endif %}
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

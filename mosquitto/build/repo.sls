# -*- coding: utf-8 -*-
# vim: ft=sls
# RedHat: mosquitto and the exporter's Python libraries come from EPEL.
{%- set tplroot = tpldir.split('/')[0] %}
{#- map.jinja's dict, from the run's first import of it (map.jinja): Salt
    would fetch and compile map.jinja again for every SLS file. #}
{%- set mosquitto = salt['mosquitto_mapdata.cached']() if 'mosquitto_mapdata.cached' in salt else none %}
{%- if mosquitto is none %}
{%-   from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
{%- endif %}

{%- if mosquitto.pkg.repo %}
mosquitto-build-repo-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.repo }}
{%- endif %}

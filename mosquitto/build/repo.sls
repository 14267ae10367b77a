# -*- coding: utf-8 -*-
# vim: ft=sls
# RedHat: mosquitto and the exporter's Python libraries come from EPEL.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}

{%- if mosquitto.pkg.repo %}
mosquitto-build-repo-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.repo }}
{%- endif %}

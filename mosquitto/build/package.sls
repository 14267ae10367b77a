# -*- coding: utf-8 -*-
# vim: ft=sls
# Base tools, the broker and its command-line clients (mosquitto_pub/sub).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}

include:
  - {{ tplroot }}.build.repo

mosquitto-build-package-pkg-installed:
  pkg.installed:
    - pkgs:
{%- for name in mosquitto.pkg.base + [mosquitto.pkg.broker, mosquitto.pkg.clients] if name %}
      - {{ name }}
{%- endfor %}
{%- if mosquitto.pkg.repo %}
    - require:
      - sls: {{ tplroot }}.build.repo
{%- endif %}

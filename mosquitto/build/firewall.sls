# -*- coding: utf-8 -*-
# vim: ft=sls
# firewalld itself, only with firewall:enabled: true (auto manages a
# firewalld that is already running and installs nothing).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}

{%- if mosquitto.firewall.enabled is sameas true %}
mosquitto-build-firewall-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.firewall }}
{%- endif %}

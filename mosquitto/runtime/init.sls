# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
include:
  # The broker as the host's service, or in a container (container:enabled).
  - .{{ 'container' if mosquitto.container.enabled else 'service' }}
  - .certificate
  - .renewal
  - .exporter
  - .firewall
  - .cluster

# -*- coding: utf-8 -*-
# vim: ft=sls
# The exporter running and enabled; restarted when its program, settings,
# unit or password change. Its /metrics answers even while the broker is down.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{#- The broker runs as the host's service or in a container (same ports). #}
{%- set broker_sls = 'container' if mosquitto.container.enabled else 'service' %}

{%- if mosquitto.exporter.enabled %}
include:
  - {{ tplroot }}.build.exporter
  - {{ tplroot }}.configure.exporter
  - {{ tplroot }}.runtime.{{ broker_sls }}

mosquitto-runtime-exporter-service-running:
  mosquitto_service.running:
    - name: {{ mosquitto.service.exporter_name }}
    - enable: True
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}
    - require:
      - sls: {{ tplroot }}.runtime.{{ broker_sls }}
    - watch:
      - sls: {{ tplroot }}.build.exporter
      - sls: {{ tplroot }}.configure.exporter

mosquitto-runtime-exporter-service-listening:
  mosquitto_broker.listening:
    - name: {{ mosquitto.service.exporter_name }}
    - ports:
      - {{ [mosquitto.exporter.bind_address
            if mosquitto.exporter.bind_address not in ('', '0.0.0.0', '::') else '127.0.0.1',
            mosquitto.ports.exporter] | json }}
    - require:
      - mosquitto_service: mosquitto-runtime-exporter-service-running
{%- endif %}

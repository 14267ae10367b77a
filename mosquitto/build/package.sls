# -*- coding: utf-8 -*-
# vim: ft=sls
# Base tools, the broker and its command-line clients (mosquitto_pub/sub).
{%- set tplroot = tpldir.split('/')[0] %}
{#- map.jinja's dict, from the run's first import of it (map.jinja): Salt
    would fetch and compile map.jinja again for every SLS file. #}
{%- set mosquitto = salt['mosquitto_mapdata.cached']() if 'mosquitto_mapdata.cached' in salt else none %}
{%- if mosquitto is none %}
{%-   from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
{%- endif %}

{#- Container mode: the broker comes with its image, not as a host package;
    the host account the files belong to is made first (build.container). #}
{%- set container = mosquitto.container.enabled %}

include:
  - {{ tplroot }}.build.repo
{%- if container %}
  - {{ tplroot }}.build.container
{%- endif %}

mosquitto-build-package-pkg-installed:
  pkg.installed:
    - pkgs:
{%- for name in mosquitto.pkg.base + [mosquitto.pkg.broker if not container else '', mosquitto.pkg.clients] if name %}
      - {{ name }}
{%- endfor %}
{%- if mosquitto.pkg.repo or container %}
    - require:
{%-   if mosquitto.pkg.repo %}
      - sls: {{ tplroot }}.build.repo
{%-   endif %}
{%-   if container %}
      - sls: {{ tplroot }}.build.container
{%-   endif %}
{%- endif %}

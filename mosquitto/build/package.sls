# -*- coding: utf-8 -*-
# vim: ft=sls
# Base tools, the broker and its command-line clients (mosquitto_pub/sub).
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

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

# -*- coding: utf-8 -*-
# vim: ft=sls
# RedHat: mosquitto and the exporter's Python libraries come from EPEL.
# Rocky, AlmaLinux and CentOS Stream carry epel-release in their own
# repositories; RHEL installs it from the URL in pkg:repo_source.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{%- if mosquitto.pkg.repo %}
mosquitto-build-repo-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.repo }}
{%-   if mosquitto.pkg.repo_source %}
    - sources:
      - {{ mosquitto.pkg.repo }}: {{ mosquitto.pkg.repo_source | json }}
{%-   endif %}
{%- endif %}

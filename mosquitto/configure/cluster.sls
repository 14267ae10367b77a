# -*- coding: utf-8 -*-
# vim: ft=sls
# A cluster spoke's bridge identity: a password generated here (root-only,
# never in pillar) and, in the Salt mine, only its user name and $7$ hash,
# which the hub reads to accept the spoke's bridge. The hub has nothing to
# configure here: it reads the mine in configure.users and configure.acl.
{%- set tplroot = tpldir.split('/')[0] %}
{#- map.jinja's dict, from the run's first import of it (map.jinja): Salt
    would fetch and compile map.jinja again for every SLS file. #}
{%- set mosquitto = salt['mosquitto_mapdata.cached']() if 'mosquitto_mapdata.cached' in salt else none %}
{%- if mosquitto is none %}
{%-   from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
{%- endif %}
{%- set cluster = mosquitto.cluster %}

{%- if cluster.role == 'spoke' %}

mosquitto-configure-cluster-secret-dir-managed:
  file.directory:
    - name: {{ salt['file.dirname'](mosquitto.paths.cluster_secret) }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True

mosquitto-configure-cluster-secret-present:
  mosquitto_passwd.secret_present:
    - name: {{ mosquitto.paths.cluster_secret }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-configure-cluster-secret-dir-managed

mosquitto-configure-cluster-identity-published:
  mosquitto_cluster.spoke_published:
    - name: {{ mosquitto.paths.cluster_secret }}
    - require:
      - mosquitto_passwd: mosquitto-configure-cluster-secret-present
{%- endif %}

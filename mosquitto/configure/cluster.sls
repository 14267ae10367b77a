# -*- coding: utf-8 -*-
# vim: ft=sls
# A cluster spoke's bridge identity: a password generated here (root-only,
# never in pillar) and, in the Salt mine, only its user name and $7$ hash,
# which the hub reads to accept the spoke's bridge. The hub has nothing to
# configure here: it reads the mine in configure.users and configure.acl.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
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

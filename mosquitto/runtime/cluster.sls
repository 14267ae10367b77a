# -*- coding: utf-8 -*-
# vim: ft=sls
# The hub publishes where spokes reach it (its domain on ports:mqtts, in the
# Salt mine) once it listens; a spoke checks that the hub accepts its bridge
# user, and asks the hub to read the mine again when it does not yet (first
# run of a fleet: the hub rendered before the spoke published).
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set cluster = mosquitto.cluster %}
{#- After the broker runs: a host service, or a container. #}
{%- set broker_sls = tplroot ~ '.runtime.' ~ ('container' if mosquitto.container.enabled else 'service') %}

{%- if cluster.role %}
include:
  - {{ broker_sls }}
{%- endif %}

{%- if cluster.role == 'hub' %}

mosquitto-runtime-cluster-hub-published:
  mosquitto_cluster.hub_published:
    - name: {{ cluster.hub }}
    - domain: {{ mosquitto.domain }}
    - port: {{ mosquitto.ports.mqtts }}
    - require:
      - sls: {{ broker_sls }}
{%- elif cluster.role == 'spoke' %}

mosquitto-runtime-cluster-spoke-accepted:
  mosquitto_cluster.spoke_accepted:
    - name: {{ cluster.hub }}
    - ca_cert: {{ mosquitto.tls.ca_cert }}
    - secret_path: {{ mosquitto.paths.cluster_secret }}
    - require:
      - sls: {{ broker_sls }}
{%- endif %}

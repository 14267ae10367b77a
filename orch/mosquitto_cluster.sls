{#- -*- coding: utf-8 -*- #}
{#- vim: ft=sls #}
{#-
  Rolling change of a mosquitto:cluster (README "Cluster"), run on the
  master:

      salt-run state.orchestrate orch.mosquitto_cluster

  The spokes apply the formula one at a time (batch 1: a bridge change
  restarts a spoke's broker, so only one spoke's link is down at a time),
  then the hub (its restart drops every bridge at once: last and once).
  A failing spoke stops the run before the hub (failhard).

  Members come from the Salt mine the formula publishes (the hub:
  mosquitto_cluster_hub, each spoke: mosquitto_cluster_spoke), so this is
  for a cluster that has converged once (`salt '*' state.apply mosquitto`).
  Name them instead with
  pillar='{"mosquitto_orch": {"hub": "mqtt1", "spokes": ["mqtt2", "mqtt3"]} }'.
#}
{%- set orch = pillar.get('mosquitto_orch', {}) %}
{%- if orch.get('hub') %}
{%-   set hubs = [orch.hub] %}
{%- else %}
{%-   set hubs = (salt['saltutil.runner']('mine.get', tgt='*', fun='mosquitto_cluster_hub') or {}).keys() | list %}
{%- endif %}
{%- if orch.get('spokes') %}
{%-   set spokes = orch.spokes %}
{%- else %}
{%-   set spokes = (salt['saltutil.runner']('mine.get', tgt='*', fun='mosquitto_cluster_spoke') or {}).keys() | sort %}
{%- endif %}

{%- if hubs | length != 1 %}

mosquitto-orch-cluster-hub-test-fail_without_changes:
  test.fail_without_changes:
    - name: >-
        expected one cluster hub in the Salt mine (mosquitto_cluster_hub),
        found {{ hubs | sort | join(', ') or 'none' }}: converge the cluster once,
        or pass pillar mosquitto_orch:hub
{%- else %}
{%-   set spokes = spokes | reject('equalto', hubs[0]) | list %}
{%-   if spokes %}

mosquitto-orch-cluster-spokes-salt-state:
  salt.state:
    - tgt: {{ spokes | json }}
    - tgt_type: list
    - sls: mosquitto
    - batch: 1
    - failhard: True
{%-   endif %}

mosquitto-orch-cluster-hub-salt-state:
  salt.state:
    - tgt: {{ hubs[0] }}
    - sls: mosquitto
{%-   if spokes %}
    - require:
      - salt: mosquitto-orch-cluster-spokes-salt-state
{%-   endif %}
{%- endif %}

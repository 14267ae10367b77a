# -*- coding: utf-8 -*-
# vim: ft=sls
# Swarm mode's clean (mosquitto/clean.sls includes it when swarm:enabled):
# the stack (services, configs, secrets, network and the brokers' volumes)
# and the manager's files under swarm:dir. The CA stays, as in host mode.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set sw = mosquitto.swarm %}
{#- Like swarm/files.sls and stack.sls: nothing unless swarm mode is on (a
    host broker's clean must not need a Docker engine). #}
{%- if sw.enabled %}

mosquitto-swarm-clean-stack-absent:
  mosquitto_swarm.stack_absent:
    - name: {{ sw.stack }}
    - wait: {{ sw.wait }}

mosquitto-swarm-clean-files-absent:
  file.absent:
    - name: {{ sw.dir }}
    - require:
      - mosquitto_swarm: mosquitto-swarm-clean-stack-absent
{%- endif %}

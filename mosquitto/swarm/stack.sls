# -*- coding: utf-8 -*-
# vim: ft=sls
# Swarm mode: the stack itself (mosquitto_swarm.stack_deployed). Its
# arguments are the manager's file paths and the services' settings; the
# state reads the files while it runs and names each config and secret by
# its content, so a changed file rolls its broker's service (stop-first,
# one service at a time, the hub last) and a converged stack changes
# nothing, also under test=True.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set sw = mosquitto.swarm %}
{%- set ct = mosquitto.container %}

{%- if sw.enabled %}
{%-   if 'mosquitto_swarm.deploy' not in salt %}
{{-     raise('mosquitto:swarm:enabled needs the Docker SDK on this minion '
              '(salt-pip install docker), then saltutil.sync_all') }}
{%-   endif %}

include:
  - .files

mosquitto-swarm-stack-deployed:
  mosquitto_swarm.stack_deployed:
    - name: {{ sw.stack }}
    - brokers: {{ salt['mosquitto_swarm.layout'](mosquitto) | json }}
    - settings:
        image: {{ ct.image | json }}
        uid: {{ ct.uid }}
        gid: {{ ct.gid }}
        nofile: {{ ct.nofile }}
        healthcheck: {{ ct.healthcheck | json }}
        data_dir: {{ mosquitto.persistence.location | json }}
        mqtt_port: {{ mosquitto.ports.mqtt }}
        mqtts_port: {{ mosquitto.ports.mqtts }}
        update_delay: {{ sw.update_delay }}
        restart_delay: {{ sw.restart_delay }}
        exporter_image: {{ sw.exporter_image | json }}
        exporter_user: {{ mosquitto.exporter.user | json }}
        exporter_port: {{ mosquitto.ports.exporter }}
        max_connections: {{ [mosquitto.listeners.mqtts.max_connections | int, ct.nofile - 64] | min }}
    - subnet: {{ sw.subnet | json }}
    - wait: {{ sw.wait }}
    - require:
      - sls: {{ tplroot }}.swarm.files
{%- endif %}

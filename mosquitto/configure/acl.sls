# -*- coding: utf-8 -*-
# vim: ft=sls
# Per-user topic rules. A user with no `acl` key in pillar may read and
# write every topic outside $SYS (validate spells that out as
# ['readwrite #']); `acl: []` gives a user no topic at all (a `user` line
# with no rule: mosquitto then denies everything). The exporter's user may
# only read $SYS/#.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{%- set acl_users = {} %}
{%- for name, spec in mosquitto.users.items() %}
{%-   do acl_users.update({name: spec.acl}) %}
{%- endfor %}
{#- Cluster hub: each spoke's bridge may carry the cluster topics (from the
    hub's side) and write its own connection state (notifications). #}
{%- if mosquitto.cluster.role == 'hub' %}
{%-   for minion, spoke in salt['mosquitto_cluster.spokes'](mosquitto.cluster.members, mosquitto.cluster.hub).items() %}
{%-     do acl_users.update({spoke.username: mosquitto.cluster.acl + ['write $SYS/broker/connection/' ~ spoke.clientid ~ '/state']}) %}
{%-   endfor %}
{%- endif %}
{%- if mosquitto.exporter.enabled %}
{%-   do acl_users.update({mosquitto.exporter.user: ['read $SYS/#']}) %}
{%- endif %}
{#- keep_existing_users (migration): users already in the password file
    that pillar does not list keep what they had without an ACL file:
    every topic outside $SYS. #}
{%- if mosquitto.keep_existing_users %}
{%-   for name in salt['mosquitto_adopt.existing_users'](mosquitto.paths.passwd) if name not in acl_users %}
{%-     do acl_users.update({name: ['readwrite #']}) %}
{%-   endfor %}
{%- endif %}

include:
  - {{ tplroot }}.build.package

mosquitto-configure-acl-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.acl }}
    - source: {{ salt['mosquitto_tofs.files_switch'](['acl.jinja'], lookup='mosquitto-configure-acl-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
    - context:
        acl_users: {{ acl_users | json }}
        patterns: {{ mosquitto.acl_patterns | json }}
    - require:
      - sls: {{ tplroot }}.build.package

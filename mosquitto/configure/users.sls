# -*- coding: utf-8 -*-
# vim: ft=sls
# The password file: one entry per pillar user (plus the exporter's own user,
# whose password is generated on the host). Entries whose password still
# matches are kept byte for byte, so a second run changes nothing; users
# gone from pillar are removed, unless keep_existing_users (then every entry
# already in the file stays as it is).
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

include:
  - {{ tplroot }}.build.package
{%- if mosquitto.exporter.enabled %}
  - {{ tplroot }}.configure.exporter
{%- endif %}

{#- Pillar keys, not passwords: state arguments are output (show_sls,
    show_lowstate, a master's job cache); the state reads each value from
    pillar while it runs. User names never hold ':' (validated). #}
{%- set users = {} %}
{%- for name, spec in mosquitto.users.items() %}
{%-   set field = 'password' if 'password' in spec else 'password_hash' %}
{%-   do users.update({name: {field ~ '_pillar': 'mosquitto:users:' ~ name ~ ':' ~ field} }) %}
{%- endfor %}
{#- On a cluster hub: each spoke's bridge user, its $7$ hash read from the
    Salt mine while the state runs (the minion id, not the hash, is the
    argument). #}
{%- if mosquitto.cluster.role == 'hub' %}
{%-   for minion, spoke in salt['mosquitto_cluster.spokes'](mosquitto.cluster.members, mosquitto.cluster.hub).items() %}
{%-     do users.update({spoke.username: {'password_hash_mine': minion} }) %}
{%-   endfor %}
{%- endif %}
{%- if mosquitto.exporter.enabled %}
{%-   do users.update({mosquitto.exporter.user: {'password_file': mosquitto.paths.exporter_secret, 'generate_password': True} }) %}
{%- endif %}

mosquitto-configure-users-passwd-managed:
  mosquitto_passwd.managed:
    - name: {{ mosquitto.paths.passwd }}
    - users: {{ users | json }}
    # keep_existing_users (migration): entries pillar does not list stay.
    - prune: {{ not mosquitto.keep_existing_users }}
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
    - require:
      - sls: {{ tplroot }}.build.package
{%- if mosquitto.exporter.enabled %}
      - mosquitto_passwd: mosquitto-configure-exporter-secret-present
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
# Swarm mode: every broker's files on the manager, under swarm:dir/<label>/
# (root-only), written by the same states and templates a host broker's are:
#  - the CA (tls:ca_cert, tls:ca_key; kept on the manager, never in the
#    swarm) and per broker a server key and certificate for its name;
#  - a spoke's bridge password (generated here) and its bridge file;
#  - per broker a password file (the pillar's users; on the hub each
#    spoke's bridge user), an ACL and a mosquitto.conf rendered with the
#    task's paths (mosquitto_swarm.broker_settings).
# mosquitto/swarm/stack.sls turns them into swarm configs and secrets.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set sw = mosquitto.swarm %}
{%- set tls = mosquitto.tls %}
{%- set layout = salt['mosquitto_swarm.layout'](mosquitto) %}
{%- set spokes = [] %}
{%- set hub = [] %}
{%- for label, broker in layout | dictsort %}
{%-   do (spokes if broker.role == 'spoke' else hub).append(label) %}
{%- endfor %}

{%- if sw.enabled %}

mosquitto-swarm-files-dirs-managed:
  file.directory:
    - names:
      - {{ sw.dir }}
{%-   for label, broker in layout | dictsort %}
      - {{ broker.dir }}
{%-   endfor %}
{%-   for dir in [salt['file.dirname'](tls.ca_key)] %}
      - {{ dir }}
{%-   endfor %}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True

mosquitto-swarm-files-ca-cert-dir-managed:
  file.directory:
    - name: {{ salt['file.dirname'](tls.ca_cert) }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

mosquitto-swarm-files-ca-present:
  mosquitto_ca.ca_present:
    - name: {{ tls.ca_cert }}
    - key_path: {{ tls.ca_key }}
    - common_name: {{ tls.ca_common_name | json }}
    - days_valid: {{ tls.ca_days_valid }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - require:
      - file: mosquitto-swarm-files-dirs-managed
      - file: mosquitto-swarm-files-ca-cert-dir-managed

{#- Pillar keys, not passwords (see configure/users.sls). #}
{%-   set users = {} %}
{%-   for name, spec in mosquitto.users.items() %}
{%-     set field = 'password' if 'password' in spec else 'password_hash' %}
{%-     do users.update({name: {field ~ '_pillar': 'mosquitto:users:' ~ name ~ ':' ~ field} }) %}
{%-   endfor %}

{%-   if salt['mosquitto_swarm.exporter_on'](mosquitto) %}

{#- The exporter program the exporter services run (a swarm config). #}
mosquitto-swarm-files-exporter-program-managed:
  file.managed:
    - name: {{ sw.dir }}/mosquitto_exporter.py
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto_exporter.py'],
                  lookup='mosquitto-build-exporter-program-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-swarm-files-dirs-managed
{%-   endif %}

{%-   for label, broker in layout | dictsort %}
{%-     set id = 'mosquitto-swarm-files-' ~ label %}

{{ id }}-cert-managed:
  mosquitto_ca.certificate_managed:
    - name: {{ broker.secrets['server.crt'] }}
    - key_path: {{ broker.secrets['server.key'] }}
    - ca_cert: {{ tls.ca_cert }}
    - ca_key: {{ tls.ca_key }}
    - common_name: {{ broker.name }}
    - dns_names: {{ ([broker.name] + (tls.dns_names if broker.name == mosquitto.domain else [])) | unique | list | json }}
    - days_valid: {{ tls.days_valid }}
    - renew_days: {{ tls.renew_days }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - mosquitto_ca: mosquitto-swarm-files-ca-present

{%-     set broker_users = users.copy() %}
{%-     if broker.exporter %}
{#-       The exporter service's MQTT password, generated here; its user
          on this broker (configure/users.sls does the same on a host). #}

{{ id }}-exporter-secret-present:
  mosquitto_passwd.secret_present:
    - name: {{ broker.exporter.secrets['exporter-password'] }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-swarm-files-dirs-managed
    - require_in:
      - mosquitto_passwd: {{ id }}-passwd-managed
{%-       do broker_users.update({mosquitto.exporter.user: {
            'password_file': broker.exporter.secrets['exporter-password'], 'generate_password': True} }) %}
{%-     endif %}
{%-     if broker.role == 'hub' %}
{#-       Each spoke's bridge user, from the password the manager generated
          for that spoke (read while the state runs). #}
{%-       for spoke in spokes %}
{%-         do broker_users.update({'bridge.' ~ layout[spoke].name: {
              'password_file': layout[spoke].dir ~ '/bridge.secret', 'generate_password': True} }) %}
{%-       endfor %}
{%-     endif %}
{%-     if broker.role == 'spoke' %}

{{ id }}-secret-present:
  mosquitto_passwd.secret_present:
    - name: {{ broker.dir }}/bridge.secret
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-swarm-files-dirs-managed
    - require_in:
      - mosquitto_passwd: mosquitto-swarm-files-{{ hub | first }}-passwd-managed

{{ id }}-bridges-dir-managed:
  file.directory:
    - name: {{ broker.dir }}/bridges
    - user: root
    - group: root
    - mode: '0700'
    - require:
      - file: mosquitto-swarm-files-dirs-managed

{#- The spoke's bridge to the hub, by the hub's name on the stack's
    network; verified against the CA as mounted in the task. #}
{{ id }}-bridge-managed:
  mosquitto_bridge.managed:
    - name: {{ broker.dir }}/bridges
    - bridges:
        cluster:
          address: [{{ (mosquitto.cluster.hub ~ ':' ~ mosquitto.ports.mqtts) | json }}]
          topics: {{ mosquitto.cluster.topic_lines | json }}
          remote_username: {{ ('bridge.' ~ broker.name) | json }}
          remote_password_file: {{ broker.dir }}/bridge.secret
          tls: True
          cleansession: False
          notifications: True
          keepalive_interval: {{ mosquitto.cluster.keepalive_interval }}
          options:
            remote_clientid: {{ (broker.name ~ '.cluster') | json }}
            try_private: True
            restart_timeout: {{ mosquitto.cluster.restart_timeout | json }}
    - ca_cert: /run/secrets/ca.crt
    - tls_version: {{ mosquitto.listeners.mqtts.tls_version }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: {{ id }}-bridges-dir-managed
      - mosquitto_passwd: {{ id }}-secret-present
{%-     endif %}

{{ id }}-passwd-managed:
  mosquitto_passwd.managed:
    - name: {{ broker.secrets.passwd }}
    - users: {{ broker_users | json }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-swarm-files-dirs-managed

{{ id }}-acl-managed:
  file.managed:
    - name: {{ broker.configs['/etc/mosquitto/acl'] }}
    - source: {{ salt['mosquitto_tofs.files_switch'](['acl.jinja'], lookup='mosquitto-configure-acl-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - context:
        acl_users: {{ salt['mosquitto_swarm.acl_users'](mosquitto, broker) | json }}
        patterns: {{ mosquitto.acl_patterns | json }}
    - require:
      - file: mosquitto-swarm-files-dirs-managed

{{ id }}-config-managed:
  file.managed:
    - name: {{ broker.configs['/etc/mosquitto/mosquitto.conf'] }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto.conf.jinja'],
                  lookup='mosquitto-configure-broker-config-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - context:
        mosquitto: {{ salt['mosquitto_swarm.broker_settings'](mosquitto, broker.name) | json }}
    - require:
      - file: mosquitto-swarm-files-dirs-managed
{%-   endfor %}
{%- endif %}

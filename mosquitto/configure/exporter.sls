# -*- coding: utf-8 -*-
# vim: ft=sls
# The exporter's own system user, its MQTT password (generated here, readable
# by that user only, never in pillar), its settings file and its unit (or
# init script where systemd is not PID 1). The password reaches the program
# as a file path, never on its command line.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set exporter = mosquitto.exporter %}
{%- set secret_dir = salt['file.dirname'](mosquitto.paths.exporter_secret) %}
{%- set python = exporter.venv_dir ~ '/bin/python' if exporter.install == 'venv' else '/usr/bin/python3' %}
{%- set mqtt_host = mosquitto.listeners.mqtt.bind_address or '127.0.0.1' %}
{#- An IPv6 address goes in brackets in the endpoint URL (tcp://[::1]:1883). #}
{%- if ':' in mqtt_host %}
{%-   set mqtt_host = '[' ~ mqtt_host ~ ']' %}
{%- endif %}

{#- The environment file: (variable, value, the pillar key it comes from). #}
{%- set env = [
      ('BROKER_ENDPOINT', 'tcp://' ~ mqtt_host ~ ':' ~ mosquitto.ports.mqtt, 'mosquitto:listeners:mqtt:bind_address'),
      ('BIND_ADDRESS', exporter.bind_address ~ ':' ~ mosquitto.ports.exporter, 'mosquitto:exporter:bind_address'),
      ('MQTT_USER', exporter.user, 'mosquitto:exporter:user'),
      ('MQTT_PASS_FILE', mosquitto.paths.exporter_secret, 'mosquitto:lookup:paths:exporter_secret'),
      ('MQTT_CLIENT_ID', 'mosquitto-exporter-' ~ grains['id'], 'grains:id'),
      ('EXPORTER_PYTHON', python, 'mosquitto:exporter:venv_dir'),
      ('EXPORTER_PROGRAM', mosquitto.paths.exporter, 'mosquitto:lookup:paths:exporter'),
      ('SERVER_CERT_FILE', mosquitto.tls.cert, 'mosquitto:tls:cert'),
      ('CA_CERT_FILE', mosquitto.tls.ca_cert, 'mosquitto:tls:ca_cert'),
      ('MAX_CONNECTIONS', mosquitto.listeners.mqtts.max_connections, 'mosquitto:listeners:mqtts:max_connections'),
    ] %}
{#- Tokens in the unit file and init script: one safe word each. #}
{%- set word = salt['mosquitto_shell.word'] %}

{%- if exporter.enabled %}
include:
  - {{ tplroot }}.build.exporter

mosquitto-configure-exporter-user-present:
  user.present:
    - name: {{ exporter.user }}
    - system: True
    - home: /nonexistent
    - createhome: False
    - shell: /usr/sbin/nologin
    - usergroup: True

mosquitto-configure-exporter-secret-dir-managed:
  file.directory:
    - name: {{ secret_dir }}
    - user: root
    - group: {{ exporter.user }}
    - mode: '0750'
    - makedirs: True
    - require:
      - user: mosquitto-configure-exporter-user-present

mosquitto-configure-exporter-secret-present:
  mosquitto_passwd.secret_present:
    - name: {{ mosquitto.paths.exporter_secret }}
    - user: root
    - group: {{ exporter.user }}
    - mode: '0640'
    - require:
      - file: mosquitto-configure-exporter-secret-dir-managed

mosquitto-configure-exporter-env-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.exporter_env }}
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (mosquitto-formula). Read by the mosquitto-exporter
        # unit and init script; the program reads the same variables.
        # Values are single-quoted and never hold a quote, backslash, $,
        # backtick or line break, so systemd and sh read the same value.
{%-   for name, value, source in env %}
        {{ salt['mosquitto_shell.env_line'](name, value, source) }}
{%-   endfor %}

{%-   if grains.get('init') == 'systemd' %}

mosquitto-configure-exporter-unit-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.systemd_units }}/{{ mosquitto.service.exporter_name }}.service
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto-exporter.service.jinja'],
                  lookup='mosquitto-configure-exporter-unit-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        env_file: {{ word(mosquitto.paths.exporter_env, 'mosquitto:lookup:paths:exporter_env') | json }}
        user: {{ word(exporter.user, 'mosquitto:exporter:user') | json }}
        python: {{ word(python, 'mosquitto:exporter:venv_dir') | json }}
        program: {{ word(mosquitto.paths.exporter, 'mosquitto:lookup:paths:exporter') | json }}
        broker_unit: {{ (word(mosquitto.service.name, 'mosquitto:lookup:service:name') ~ '.service') | json }}
{%-   else %}

mosquitto-configure-exporter-init-file-managed:
  file.managed:
    - name: /etc/init.d/{{ mosquitto.service.exporter_name }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto-exporter.init.jinja'],
                  lookup='mosquitto-configure-exporter-init-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0755'
    - context:
        name: {{ word(mosquitto.service.exporter_name, 'mosquitto:lookup:service:exporter_name') | json }}
        env_file: {{ word(mosquitto.paths.exporter_env, 'mosquitto:lookup:paths:exporter_env') | json }}
        user: {{ word(exporter.user, 'mosquitto:exporter:user') | json }}
        python: {{ word(python, 'mosquitto:exporter:venv_dir') | json }}
        program: {{ word(mosquitto.paths.exporter, 'mosquitto:lookup:paths:exporter') | json }}

{%-   endif %}
{%- endif %}

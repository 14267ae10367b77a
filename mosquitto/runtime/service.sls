# -*- coding: utf-8 -*-
# vim: ft=sls
# The broker running and enabled at boot.
#  - listeners, persistence, bridges (configure.broker, configure.bridges),
#    the CA and the service's limits and sandbox (configure.service) are
#    read only at start: a change restarts the broker;
#  - users and ACLs are re-read on SIGHUP: a change reloads it, so connected
#    clients whose credentials still hold stay connected;
#  - the server certificate and key are re-read on SIGHUP too: its reload
#    lives in runtime.certificate, which the renewal job applies alone.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

include:
  # What the broker reads (required or watched below); runtime/init.sls
  # brings in the whole configure phase when the runtime phase is applied.
  - {{ tplroot }}.configure.tls
  - {{ tplroot }}.configure.users
  - {{ tplroot }}.configure.acl
  - {{ tplroot }}.configure.bridges
  - {{ tplroot }}.configure.broker
  - {{ tplroot }}.configure.service
  - {{ tplroot }}.runtime.certificate

{%- if grains.get('init') != 'systemd' %}

{#- systemd's unit creates the pid file's directory; the init scripts of
    Debian's package do not, and the broker (already running as user
    mosquitto when it writes the pid file) cannot create it under /run. #}
mosquitto-runtime-service-run-dir-managed:
  file.directory:
    - name: {{ mosquitto.paths.run_dir }}
    - user: {{ mosquitto.service.user }}
    - group: {{ mosquitto.service.group }}
    - mode: '0755'
    - require:
      - sls: {{ tplroot }}.build.package
    - require_in:
      - mosquitto_service: mosquitto-runtime-service-running
{%- endif %}

mosquitto-runtime-service-running:
  mosquitto_service.running:
    - name: {{ mosquitto.service.name }}
    - enable: True
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}
    - require:
      - sls: {{ tplroot }}.configure.users
      - sls: {{ tplroot }}.configure.acl
    - watch:
      - sls: {{ tplroot }}.configure.broker
      - sls: {{ tplroot }}.configure.bridges
      # unit drop-in / open-files limit: applied at start only
      - sls: {{ tplroot }}.configure.service
      # The CA only, not all of configure.tls: that file also holds the
      # server certificate, whose reissue must not drop every client.
      - mosquitto_ca: mosquitto-configure-tls-ca-present
    # A certificate reload after the (re)start, never a start by the reload.
    - require_in:
      - mosquitto_service: mosquitto-runtime-certificate-service-reloaded

mosquitto-runtime-service-reloaded:
  mosquitto_service.running:
    - name: {{ mosquitto.service.name }}
    - reload: True
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}
    - require:
      - mosquitto_service: mosquitto-runtime-service-running
    - watch:
      - sls: {{ tplroot }}.configure.users
      - sls: {{ tplroot }}.configure.acl

{#- Wildcard listeners are checked on loopback, which they include. #}
{%- set mqtts_host = mosquitto.listeners.mqtts.bind_address or '127.0.0.1' %}
mosquitto-runtime-service-listening:
  mosquitto_broker.listening:
    - name: {{ mosquitto.service.name }}
    - ports:
      # JSON: an IPv6 address such as ::1 is not a plain YAML scalar.
      - {{ [mosquitto.listeners.mqtt.bind_address or '127.0.0.1', mosquitto.ports.mqtt] | json }}
      - {{ [mqtts_host, mosquitto.ports.mqtts] | json }}
    - log_file: {{ mosquitto.paths.log_file | json }}
    - log_user: {{ mosquitto.service.user | json }}
    - require:
      - mosquitto_service: mosquitto-runtime-service-reloaded

# -*- coding: utf-8 -*-
# vim: ft=sls
# The server certificate the running broker serves. Mosquitto re-reads
# certfile and keyfile on SIGHUP (listeners__reload_all_certificates), so a
# reissue (renewal, new SAN, new key) reloads the broker and connected
# clients stay; the next TLS handshake gets the new certificate. A CA change
# restarts it instead (runtime.service).
# Applied alone by the renewal job (runtime.renewal): it holds everything a
# reissue needs, and nothing that would need a restart to take effect.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{#- The server certificate's state: issued, or checked and copied (tls:own_cert). #}
{%- set cert_state = 'mosquitto_own_cert' if mosquitto.tls.own_cert else 'mosquitto_ca' %}

include:
  - {{ tplroot }}.configure.tls

{%- if mosquitto.container.enabled %}

{#- Container mode: the same SIGHUP, sent inside the container (see
    runtime/container.sls for why not through the engine's kill API). #}
mosquitto-runtime-certificate-service-reloaded:
  module.run:
    - docker.run_all:
      - name: {{ mosquitto.container.name }}
      - cmd: sh -c 'kill -HUP 1'
      - exec_driver: nsenter
    - onchanges:
      - {{ cert_state }}: mosquitto-configure-tls-server-cert-managed
{%- else %}

mosquitto-runtime-certificate-service-reloaded:
  mosquitto_service.running:
    - name: {{ mosquitto.service.name }}
    - reload: True
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}
    - watch:
      # The server certificate only: a CA change is a restart (runtime.service).
      - {{ cert_state }}: mosquitto-configure-tls-server-cert-managed
{%- endif %}

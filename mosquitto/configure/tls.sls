# -*- coding: utf-8 -*-
# vim: ft=sls
# The formula's own CA and the broker's server certificate.
# The CA is created once and never replaced (clients trust it); the server
# certificate is reissued only when its names or key change or it nears
# expiry (mosquitto_ca.needs_reissue). The CA key is root-only: the broker
# never needs it. The server key is root:mosquitto 0640: the broker reads it
# after dropping privileges.
# With tls:own_cert (README "Bring your own certificate") the formula makes
# no CA and issues nothing: it checks the certificate and key another tool
# left on the host against tls:ca_cert and the broker's names, and copies
# them to tls:cert and tls:key (mosquitto_own_cert), under the same ids.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set tls = mosquitto.tls %}

include:
  - {{ tplroot }}.build.package

mosquitto-configure-tls-certs-dir-managed:
  file.directory:
    - names:
{%- set dirs = [] %}
{#- An own CA's directory is its owner's, not the formula's. #}
{%- for path in ([] if tls.own_cert else [tls.ca_cert]) + [tls.cert, tls.key] %}
{%-   do dirs.append(salt['file.dirname'](path)) %}
{%- endfor %}
{%- for dir in dirs | unique %}
      - {{ dir }}
{%- endfor %}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

{%- if tls.own_cert %}

mosquitto-configure-tls-ca-present:
  mosquitto_own_cert.ca_trusted:
    - name: {{ tls.ca_cert }}

mosquitto-configure-tls-server-cert-managed:
  mosquitto_own_cert.installed:
    - name: {{ tls.cert }}
    - key_path: {{ tls.key }}
    - source_cert: {{ tls.own_cert }}
    - source_key: {{ tls.own_key }}
    - ca_cert: {{ tls.ca_cert }}
    - common_name: {{ mosquitto.domain }}
    - dns_names: {{ tls.san_dns | json }}
    - ip_addresses: {{ tls.ip_addresses | json }}
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
    - require:
      - mosquitto_own_cert: mosquitto-configure-tls-ca-present
      - file: mosquitto-configure-tls-certs-dir-managed
      - sls: {{ tplroot }}.build.package
{%- elif not tls.ca_server %}

mosquitto-configure-tls-ca-dir-managed:
  file.directory:
    - name: {{ salt['file.dirname'](tls.ca_key) }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True

{%-   if tls.adopt_ca.cert %}
{#-   Migration: the CA already on the host (clients trust it) becomes the
      formula's. Checked here, while rendering: a missing file, a key that
      does not open or does not match fails the run naming the pillar key
      before any state runs. The passphrase stays in pillar. #}
{%-     set adopted = salt['mosquitto_adopt.ca_check'](tls.adopt_ca.cert, tls.adopt_ca.key, tls.ca_cert, tls.ca_key) %}

mosquitto-configure-tls-ca-adopted:
  mosquitto_adopt.ca_adopted:
    - name: {{ tls.ca_cert }}
    - key_path: {{ tls.ca_key }}
    - source_cert: {{ tls.adopt_ca.cert | json }}
    - source_key: {{ tls.adopt_ca.key | json }}
    - require:
      - file: mosquitto-configure-tls-ca-dir-managed
      - file: mosquitto-configure-tls-certs-dir-managed
    - require_in:
      - mosquitto_ca: mosquitto-configure-tls-ca-present
{%-   endif %}

mosquitto-configure-tls-ca-present:
  mosquitto_ca.ca_present:
    - name: {{ tls.ca_cert }}
    - key_path: {{ tls.ca_key }}
    {#- An adopted CA keeps its own name: no warning that it differs. #}
    - common_name: {{ (adopted.subject_cn if tls.adopt_ca.cert else tls.ca_common_name) | json }}
    - days_valid: {{ tls.ca_days_valid }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - require:
      - file: mosquitto-configure-tls-ca-dir-managed
      - file: mosquitto-configure-tls-certs-dir-managed
{%-   if salt['config.get']('file_client') != 'local' %}

{#- Brokers with tls:ca_server pointing here read the CA certificate from
    the Salt mine, so their runs need no answer from this minion. #}
mosquitto-configure-tls-ca-cert-published:
  mosquitto_ca.ca_cert_published:
    - name: {{ tls.ca_cert }}
    - require:
      - mosquitto_ca: mosquitto-configure-tls-ca-present
{%-   endif %}
{%- else %}

{#- Fleet mode: the CA lives on the minion tls:ca_server; this host only
    fetches ca.crt (from the Salt mine, where the CA minion puts it) and gets
    its CSR signed there (Salt peer publish). #}
mosquitto-configure-tls-ca-present:
  mosquitto_ca.ca_cert_present:
    - name: {{ tls.ca_cert }}
    - ca_server: {{ tls.ca_server }}
    # The CA minion answers in well under a second; a peer job it missed
    # (seen while firewalld starts there and its minion reconnects) is
    # given up after publish_timeout and asked again, instead of stalling
    # the run for Salt's 30 s.
    - publish_timeout: 10
    # On a first run of the whole fleet the CA minion may still be making
    # its CA: ask again for a while before failing.
    - retry:
        attempts: 10
        interval: 6
    - require:
      - file: mosquitto-configure-tls-certs-dir-managed
{%- endif %}

{%- if not tls.own_cert %}

mosquitto-configure-tls-server-cert-managed:
  mosquitto_ca.certificate_managed:
    - name: {{ tls.cert }}
    - key_path: {{ tls.key }}
    - ca_cert: {{ tls.ca_cert }}
    - ca_key: {{ tls.ca_key }}
    - common_name: {{ mosquitto.domain }}
    - dns_names: {{ tls.san_dns | json }}
    - ip_addresses: {{ tls.ip_addresses | json }}
    - days_valid: {{ tls.days_valid }}
    - renew_days: {{ tls.renew_days }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
{%- if tls.ca_server %}
    - ca_server: {{ tls.ca_server }}
    - publish_timeout: 10
    # Ask again when the CA minion does not answer (busy, restarting), but
    # not when it refuses: a refusal by its signing policy is final, and
    # Salt's `retry` would repeat it (and its log lines) for nothing.
    - publish_retries: 7
    - publish_interval: 3
{%- endif %}
    - require:
      - mosquitto_ca: mosquitto-configure-tls-ca-present
      - sls: {{ tplroot }}.build.package
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
# Kubernetes (kubernetes:enabled): the broker, or the cluster's hub and
# spokes, as a kustomize directory on this minion (kubernetes:dir), applied
# with `kubectl apply -k` when kubernetes:kubeconfig is set. Nothing of a
# broker is installed on this host.
#
# The manifests and kustomization.yaml are plain data from
# mosquitto_kubernetes.plan (no secrets). Secrets are files the formula's
# own states write while they run, root-only, never shown: server keys and
# certificates (mosquitto_ca, from this minion's CA or tls:ca_server), the
# password files (users read from pillar by key, the exporter's and the
# spokes' bridge passwords generated here) and bridge files. kustomize's
# secretGenerator turns them into Secrets when the directory is built, so
# Secret data is never a state argument, a diff or Salt output.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set k8s = mosquitto.kubernetes %}
{%- if not k8s.enabled %}
{%-   do raise('mosquitto.kubernetes: set mosquitto:kubernetes:enabled: true to render this minion\'s '
               'broker or cluster for Kubernetes (README "Orchestrators")') %}
{%- endif %}
{%- set tls = mosquitto.tls %}
{%- set dir = k8s.dir.rstrip('/') %}
{%- set plan = salt['mosquitto_kubernetes.plan'](mosquitto) %}
{%- set roles = plan.roles | map(attribute='role') | list %}

mosquitto-kubernetes-dirs-file-directory:
  file.directory:
    - names:
      - {{ dir }}
      - {{ dir }}/files
      - {{ dir }}/secrets
{%- for role in roles %}
      - {{ dir }}/files/{{ role }}
      - {{ dir }}/secrets/{{ role }}
      - {{ dir }}/secrets/{{ role }}/bridges
{%- endfor %}
    - user: root
    - group: root
    # Root-only: the secrets below live here until kustomize reads them.
    - mode: '0700'
    - makedirs: True

{%- if not tls.ca_server %}

mosquitto-kubernetes-ca-dir-file-directory:
  file.directory:
    - name: {{ salt['file.dirname'](tls.ca_key) }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True

mosquitto-kubernetes-ca-mosquitto_ca-ca_present:
  mosquitto_ca.ca_present:
    - name: {{ tls.ca_cert }}
    - key_path: {{ tls.ca_key }}
    - common_name: {{ tls.ca_common_name | json }}
    - days_valid: {{ tls.ca_days_valid }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - require:
      - file: mosquitto-kubernetes-ca-dir-file-directory
{%- else %}

mosquitto-kubernetes-ca-mosquitto_ca-ca_present:
  mosquitto_ca.ca_cert_present:
    - name: {{ tls.ca_cert }}
    - ca_server: {{ tls.ca_server }}
    - publish_timeout: 10
{%- endif %}

{#- The CA certificate the pods trust, copied into the directory: kustomize
    reads files below it only. #}
mosquitto-kubernetes-ca-cert-file-managed:
  file.managed:
    - name: {{ dir }}/files/ca.crt
    - source: {{ tls.ca_cert }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
      - mosquitto_ca: mosquitto-kubernetes-ca-mosquitto_ca-ca_present

{%- if mosquitto.exporter.enabled %}

mosquitto-kubernetes-exporter-program-file-managed:
  file.managed:
    - name: {{ dir }}/files/mosquitto_exporter.py
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto_exporter.py'],
                  lookup='mosquitto-build-exporter-program-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - user: root
    - group: root
    - mode: '0644'
    - show_changes: False
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%- endif %}

{%- if 'spoke' in roles %}

{#- The spokes' bridge password: generated here once, in the hub's password
    file (hashed) and the spokes' bridge file (plain), nowhere else. #}
mosquitto-kubernetes-cluster-secret-mosquitto_passwd-secret_present:
  mosquitto_passwd.secret_present:
    - name: {{ dir }}/secrets/cluster-bridge.secret
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%- endif %}

{%- for spec in plan.roles %}
{%-   set role = spec.role %}

mosquitto-kubernetes-{{ role }}-cert-mosquitto_ca-certificate_managed:
  mosquitto_ca.certificate_managed:
    - name: {{ dir }}/secrets/{{ role }}/server.crt
    - key_path: {{ dir }}/secrets/{{ role }}/server.key
    - ca_cert: {{ tls.ca_cert }}
    - ca_key: {{ tls.ca_key }}
    - common_name: {{ mosquitto.domain }}
    - dns_names: {{ spec.dns_names | json }}
    - ip_addresses: {{ tls.ip_addresses | json }}
    - days_valid: {{ tls.days_valid }}
    - renew_days: {{ tls.renew_days }}
    - key_type: {{ tls.key_type }}
    - key_size: {{ tls.key_size }}
    - user: root
    - group: root
    - mode: '0600'
{%-   if tls.ca_server %}
    - ca_server: {{ tls.ca_server }}
    - publish_timeout: 10
    - publish_retries: 7
    - publish_interval: 3
{%-   endif %}
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
      - mosquitto_ca: mosquitto-kubernetes-ca-mosquitto_ca-ca_present

mosquitto-kubernetes-{{ role }}-passwd-mosquitto_passwd-managed:
  mosquitto_passwd.managed:
    - name: {{ dir }}/secrets/{{ role }}/passwd
    - users: {{ spec.users | json }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%-   if role == 'hub' %}
      - mosquitto_passwd: mosquitto-kubernetes-cluster-secret-mosquitto_passwd-secret_present
{%-   endif %}

mosquitto-kubernetes-{{ role }}-bridges-mosquitto_bridge-managed:
  mosquitto_bridge.managed:
    - name: {{ dir }}/secrets/{{ role }}/bridges
    - bridges: {{ spec.bridges | json }}
    - ca_cert: {{ spec.settings.tls.ca_cert }}
    - tls_version: {{ mosquitto.listeners.mqtts.tls_version }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%-   if role == 'spoke' %}
      - mosquitto_passwd: mosquitto-kubernetes-cluster-secret-mosquitto_passwd-secret_present
{%-   endif %}

mosquitto-kubernetes-{{ role }}-config-file-managed:
  file.managed:
    - name: {{ dir }}/files/{{ role }}/mosquitto.conf
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto.conf.jinja'],
                  lookup='mosquitto-configure-broker-config-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - context:
        mosquitto: {{ spec.settings | json }}
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory

mosquitto-kubernetes-{{ role }}-acl-file-managed:
  file.managed:
    - name: {{ dir }}/files/{{ role }}/acl
    - source: {{ salt['mosquitto_tofs.files_switch'](['acl.jinja'], lookup='mosquitto-configure-acl-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0600'
    - context:
        acl_users: {{ spec.acl_users | json }}
        patterns: {{ mosquitto.acl_patterns | json }}
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%- endfor %}

{%- for name, text in plan.files | dictsort %}

mosquitto-kubernetes-manifest-{{ name }}-file-managed:
  file.managed:
    - name: {{ dir }}/{{ name }}
    - contents: {{ text | json }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: mosquitto-kubernetes-dirs-file-directory
{%- endfor %}
{%- if k8s.kubeconfig %}

{#- Applied only when something in the directory changed. kubectl prints
    object names, never Secret data. #}
mosquitto-kubernetes-applied-cmd-run:
  cmd.run:
    - name: {{ [k8s.kubectl, '--kubeconfig', k8s.kubeconfig, 'apply', '-k', dir] | map('quote') | join(' ') }}
    - onchanges:
      - file: mosquitto-kubernetes-ca-cert-file-managed
{%-   for spec in plan.roles %}
      - mosquitto_ca: mosquitto-kubernetes-{{ spec.role }}-cert-mosquitto_ca-certificate_managed
      - mosquitto_passwd: mosquitto-kubernetes-{{ spec.role }}-passwd-mosquitto_passwd-managed
      - mosquitto_bridge: mosquitto-kubernetes-{{ spec.role }}-bridges-mosquitto_bridge-managed
      - file: mosquitto-kubernetes-{{ spec.role }}-config-file-managed
      - file: mosquitto-kubernetes-{{ spec.role }}-acl-file-managed
{%-   endfor %}
{%-   for name in plan.files %}
      - file: mosquitto-kubernetes-manifest-{{ name }}-file-managed
{%-   endfor %}
{%-   if mosquitto.exporter.enabled %}
      - file: mosquitto-kubernetes-exporter-program-file-managed
{%-   endif %}
{%- endif %}

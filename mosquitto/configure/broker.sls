# -*- coding: utf-8 -*-
# vim: ft=sls
# mosquitto.conf, owned whole by the formula on every distribution (Debian's
# main file would otherwise clash with ours: repeated pid_file or log_dest
# stops the broker), and the directories it names.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{#- The context is a state argument (show_sls, a master's job cache): no
    passwords in it. Users live in the password file, bridges (with their
    remote_password) in configure.bridges' directory. #}
{%- set settings = mosquitto.copy() %}
{%- do settings.pop('users') %}
{%- do settings.pop('bridges') %}
{#- tls:adopt_ca holds the adopted CA key's passphrase. #}
{%- set tls_settings = settings.tls.copy() %}
{%- do tls_settings.pop('adopt_ca', None) %}
{%- do settings.update({'tls': tls_settings}) %}

{#- Everything the config names (certificates, password file, ACL) comes
    first: included, so this file also applies on its own. #}
include:
  - {{ tplroot }}.build.package
  - {{ tplroot }}.configure.tls
  - {{ tplroot }}.configure.users
  - {{ tplroot }}.configure.acl
  - {{ tplroot }}.configure.bridges

{%- if mosquitto.persistence.enabled %}

mosquitto-configure-broker-persistence-dir-managed:
  file.directory:
    - name: {{ mosquitto.persistence.location }}
    - user: {{ mosquitto.service.user }}
    - group: {{ mosquitto.service.group }}
    - mode: '0750'
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.build.package
    - require_in:
      - file: mosquitto-configure-broker-config-file-managed
{%-   if mosquitto.container.enabled %}

{#- The container's uid may change with the image: its database too. The
    container writes this directory while Salt walks it: file.directory's
    recurse would chown by name, and a link swapped in meanwhile would hand
    its target to that uid; owned_tree never follows one. #}
mosquitto-configure-broker-persistence-tree-owned:
  mosquitto_broker.owned_tree:
    - name: {{ mosquitto.persistence.location }}
    - user: {{ mosquitto.service.user }}
    - group: {{ mosquitto.service.group }}
    - require:
      - file: mosquitto-configure-broker-persistence-dir-managed
    - require_in:
      - file: mosquitto-configure-broker-config-file-managed
{%-   endif %}
{%- endif %}

{#- Migration: a broker running from a mosquitto.conf without the
    formula's persistence (the playbook's has none) keeps its offline
    sessions and queued messages in memory only. Read while rendering,
    before the formula writes its file; when it differs, the running broker
    saves its store at persistence:location first, and the restart after
    the new file loads it. #}
{%- set running_persistence = salt['mosquitto_adopt.conf_persistence'](mosquitto.paths.conf) %}
{%- if mosquitto.persistence.enabled and not mosquitto.container.enabled and running_persistence is not none
      and (not running_persistence.enabled or running_persistence.location != mosquitto.persistence.location) %}

mosquitto-configure-broker-persistence-handed-over:
  mosquitto_adopt.persistence_handed_over:
    - name: {{ mosquitto.service.name }}
    - conf: {{ mosquitto.paths.conf | json }}
    - location: {{ mosquitto.persistence.location | json }}
    - require:
      - file: mosquitto-configure-broker-persistence-dir-managed
    - require_in:
      - file: mosquitto-configure-broker-config-file-managed
{%- endif %}

{#- A container's broker logs to stderr (docker logs), not to a file. #}
{%- if mosquitto.paths.log_file and not mosquitto.container.enabled %}

mosquitto-configure-broker-log-dir-managed:
  file.directory:
    - name: {{ salt['file.dirname'](mosquitto.paths.log_file) }}
    - user: {{ mosquitto.service.user }}
    - group: {{ mosquitto.service.group }}
    - mode: '0750'
    - require:
      - sls: {{ tplroot }}.build.package
    - require_in:
      - file: mosquitto-configure-broker-config-file-managed
{%- endif %}

mosquitto-configure-broker-config-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.conf }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto.conf.jinja'],
                  lookup='mosquitto-configure-broker-config-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
    - context:
        mosquitto: {{ settings | json }}
    - require:
      - sls: {{ tplroot }}.build.package
      - sls: {{ tplroot }}.configure.tls
      - sls: {{ tplroot }}.configure.users
      - sls: {{ tplroot }}.configure.acl
      - sls: {{ tplroot }}.configure.bridges

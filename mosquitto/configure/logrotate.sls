# -*- coding: utf-8 -*-
# vim: ft=sls
# The broker's log file does not grow without bound: logrotate rotates it.
# Debian's mosquitto package ships /etc/logrotate.d/mosquitto for the path
# the formula uses (lookup:paths:logrotate ''), but not logrotate itself
# (a minimal host has none). EPEL's ships no rotation: the formula writes
# its own file there (lookup:paths:logrotate). A container logs to stderr
# (docker logs): nothing here.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- if mosquitto.paths.log_file and not mosquitto.container.enabled and mosquitto.pkg.logrotate %}

include:
  - {{ tplroot }}.build.package

mosquitto-configure-logrotate-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.logrotate }}
    - require:
      - sls: {{ tplroot }}.build.package
{%-   if mosquitto.paths.logrotate %}

mosquitto-configure-logrotate-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.logrotate }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['logrotate.jinja'],
                  lookup='mosquitto-configure-logrotate-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    {#- logrotate splits on blanks and reads quotes: one safe word each
        (README "Trust boundaries"). #}
    - context:
        log_file: {{ salt['mosquitto_shell.word'](mosquitto.paths.log_file, 'mosquitto:lookup:paths:log_file') | json }}
        user: {{ salt['mosquitto_shell.word'](mosquitto.service.user, 'mosquitto:lookup:service:user') | json }}
        group: {{ salt['mosquitto_shell.word'](mosquitto.service.group, 'mosquitto:lookup:service:group') | json }}
    - require:
      - pkg: mosquitto-configure-logrotate-pkg-installed
{%-   endif %}
{%- endif %}

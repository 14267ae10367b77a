# -*- coding: utf-8 -*-
# vim: ft=sls
# How the broker's service runs: its open-files limit (one file descriptor
# per client) and, under systemd, a hardened drop-in for the distribution's
# unit (own user from the start, read-only system, no capabilities, a
# system-call filter, a reload that needs no procps). Without systemd
# (containers, sysvinit) the init script gets the limit from a hook.
# A change here restarts the broker (runtime/service.sls watches it).
# All of it is about the host's mosquitto service: in container mode there
# is none (the container has its own limit, sandbox and log to stderr), so
# nothing is written; clean.sls removes what an earlier host-mode run left.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set paths = mosquitto.paths %}
{%- set rw_paths = [] %}
{%- if mosquitto.persistence.enabled %}
{%-   do rw_paths.append(mosquitto.persistence.location.rstrip('/')) %}
{%- endif %}
{%- if paths.log_file %}
{%-   do rw_paths.append(salt['file.dirname'](paths.log_file)) %}
{%- endif %}

{%- set word = salt['mosquitto_shell.word'] %}

include:
  - {{ tplroot }}.build.package
{%- if paths.log_file and not mosquitto.container.enabled %}
  # the log file's directory (see the log file's state below)
  - {{ tplroot }}.configure.broker
{%- endif %}

{%- if mosquitto.container.enabled %}
{#- Host mode only (see above). #}
{%- elif grains.get('init') == 'systemd' %}

mosquitto-configure-service-dropin-file-managed:
  file.managed:
    - name: {{ paths.systemd_units }}/{{ mosquitto.service.name }}.service.d/mosquitto-formula.conf
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto.service.d.conf.jinja'],
                  lookup='mosquitto-configure-service-dropin-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    # Tokens in a unit file: one safe word each, or the render fails
    # naming the key (README "Trust boundaries").
    - context:
        user: {{ word(mosquitto.service.user, 'mosquitto:lookup:service:user') | json }}
        group: {{ word(mosquitto.service.group, 'mosquitto:lookup:service:group') | json }}
        run_dir_name: {{ word(paths.run_dir | replace('/run/', '', 1), 'mosquitto:lookup:paths:run_dir') | json }}
        open_files: {{ word(mosquitto.limits.open_files_effective, 'mosquitto:limits:open_files') | json }}
        low_ports: {{ mosquitto.ports.mqtt < 1024 or mosquitto.ports.mqtts < 1024 }}
        rw_paths: {{ salt['mosquitto_shell.words'](rw_paths, 'mosquitto:persistence:location, mosquitto:lookup:paths:log_file') | json }}
    - require:
      - sls: {{ tplroot }}.build.package

{#- systemd reads unit files only on daemon-reload: without it the restart
    that follows would still use the old settings. #}
mosquitto-configure-service-systemd-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: mosquitto-configure-service-dropin-file-managed
{%- elif paths.sysv_limits_hook %}

mosquitto-configure-service-limits-file-managed:
  file.managed:
    - name: {{ paths.sysv_limits_hook }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto-limits.sh.jinja'],
                  lookup='mosquitto-configure-service-limits-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        daemon: /usr/sbin/mosquitto
        open_files: {{ word(mosquitto.limits.open_files_effective, 'mosquitto:limits:open_files') | json }}
{%- endif %}

{%- if paths.log_file and not mosquitto.container.enabled %}

{#- A log file the broker made while it still started as root stays
    root's; the broker now opens it as its own user. Its directory is the
    broker user's: file.managed would chown whatever a link planted there
    points to, this state never follows one (README "Trust boundaries").
    configure.broker makes the directory. #}
mosquitto-configure-service-log-file-managed:
  mosquitto_broker.owned_file_present:
    - name: {{ paths.log_file }}
    - user: {{ mosquitto.service.user }}
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
    - require:
      - sls: {{ tplroot }}.build.package
      - file: mosquitto-configure-broker-log-dir-managed
{%- endif %}

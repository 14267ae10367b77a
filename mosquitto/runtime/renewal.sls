# -*- coding: utf-8 -*-
# vim: ft=sls
# Renewal without an operator (tls:auto_renew): once a day the host applies
# runtime.certificate alone, so a server certificate within tls:renew_days
# of expiry is reissued and the broker reloaded (clients stay connected).
# A run with nothing to renew changes nothing.
#  - Under a master: a Salt schedule entry in the minion (persisted in its
#    schedule.conf); the job's return goes to the master's job cache.
#  - Masterless (salt-call --local): a cron entry running the same salt-call
#    with the config dir of this run, and the cron daemon (cron on Debian,
#    cronie's crond on RedHat, which its package leaves stopped) running
#    and enabled. Under a master there is no cron entry.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set job_name = 'mosquitto-tls-renew' %}
{%- set job_sls = tplroot ~ '.runtime.certificate' %}
{%- set masterless = salt['config.get']('file_client') == 'local' %}

{%- if not masterless %}

mosquitto-runtime-renewal-schedule-{{ 'present' if mosquitto.tls.auto_renew else 'absent' }}:
{%-   if mosquitto.tls.auto_renew %}
  schedule.present:
    - name: {{ job_name }}
    - function: state.apply
    - job_args:
      - {{ job_sls }}
    # Waits for an operator's state run instead of failing beside it.
    - job_kwargs:
        queue: True
    - hours: 24
    # Not at once when added or when the minion starts: Salt's default would
    # run it right then, beside the very apply that installed it (whose
    # follow-up applies then fail with "state.apply is running").
    - run_on_start: False
    # Spread a fleet's daily runs over an hour: signing goes through one CA minion.
    - splay: 3600
    - persist: True
{%-   else %}
  schedule.absent:
    - name: {{ job_name }}
    - persist: True
{%-   endif %}

{#- A host that was masterless before keeps no second job. #}
mosquitto-runtime-renewal-cron-absent:
  file.absent:
    - name: {{ mosquitto.paths.renew_cron }}
{%- elif mosquitto.tls.auto_renew %}
{#- salt-call beside this Salt's Python (virtualenv, onedir), else on PATH. #}
{%-   set salt_call = salt['file.join'](salt['file.dirname'](grains['pythonexecutable']), 'salt-call') %}
{%-   if not salt['file.file_exists'](salt_call) %}
{%-     set salt_call = salt['cmd.which']('salt-call') or 'salt-call' %}
{%-   endif %}
{#- A fixed minute and hour per host, so hosts do not all renew at once. #}
{%-   set spread = salt['hashutil.md5_digest'](grains['id'])[:6] | int(base=16) %}
{%-   set renew_command = salt_call ~ ' --config-dir ' ~ opts['config_dir']
                          ~ ' --local --retcode-passthrough --out=quiet state.apply ' ~ job_sls %}

mosquitto-runtime-renewal-cron-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.cron }}

mosquitto-runtime-renewal-cron-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.renew_cron }}
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (mosquitto-formula, tls:auto_renew): renews the
        # server certificate within tls:renew_days of expiry, then reloads
        # the broker. Output and errors: salt-call's log ({{ opts['log_file'] }}).
        SHELL=/bin/sh
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        {{ spread % 60 }} {{ (spread // 60) % 24 }} * * * root {{ renew_command }}
    - require:
      - pkg: mosquitto-runtime-renewal-cron-pkg-installed

mosquitto-runtime-renewal-cron-service-running:
  mosquitto_service.running:
    - name: {{ mosquitto.service.cron_name }}
    - enable: True
{%-   if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%-   endif %}
    - require:
      - pkg: mosquitto-runtime-renewal-cron-pkg-installed
{%- else %}

mosquitto-runtime-renewal-cron-absent:
  file.absent:
    - name: {{ mosquitto.paths.renew_cron }}
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
# The Python exporter (files/default/mosquitto_exporter.py) and its two
# libraries: the distribution's packages by default (Debian 12:
# python3-paho-mqtt 1.6, EPEL: python3-paho-mqtt), or a virtualenv from
# PyPI with exporter:install: venv.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set exporter = mosquitto.exporter %}

{%- if exporter.enabled %}
include:
  - {{ tplroot }}.build.repo

{%-   if exporter.install == 'pkg' %}

mosquitto-build-exporter-deps-pkg-installed:
  pkg.installed:
    - pkgs: {{ mosquitto.pkg.exporter_deps | json }}
{%-     if mosquitto.pkg.repo %}
    - require:
      - sls: {{ tplroot }}.build.repo
{%-     endif %}
{%-   else %}

{%-     if mosquitto.pkg.venv %}
mosquitto-build-exporter-venv-pkg-installed:
  pkg.installed:
    - name: {{ mosquitto.pkg.venv }}
    - require_in:
      - cmd: mosquitto-build-exporter-deps-venv-created
{%-     endif %}

mosquitto-build-exporter-deps-venv-created:
  cmd.run:
    # The system interpreter, which the exporter user can run (salt-call may
    # find another python3 first on PATH, e.g. one under /root).
    # A shell runs it: the directory must be one safe word.
    - name: /usr/bin/python3 -m venv {{ salt['mosquitto_shell.word'](exporter.venv_dir, 'mosquitto:exporter:venv_dir') }}
    - creates: {{ exporter.venv_dir }}/bin/python

{#- pip runs only when the wanted versions are not all there yet: the same
    install without an index (and without pip's config files, which could
    name one or a find-links directory) can fetch nothing, so it succeeds
    exactly when every requirement and its dependencies are installed.
    Not --dry-run: pip has it from 22.2 only, and Rocky 9's python3.9 venv
    brings pip 21 (test/render/test_exporter_venv_pip.py runs this against
    pip 21.3.1). #}
{%-     set reqs = exporter.pip_pkgs | map('yaml_squote') | join(' ') %}
mosquitto-build-exporter-deps-pip-installed:
  cmd.run:
    - name: {{ exporter.venv_dir }}/bin/pip install --quiet {{ reqs }}
    - unless: PIP_CONFIG_FILE=/dev/null {{ exporter.venv_dir }}/bin/pip install --quiet --no-index --disable-pip-version-check {{ reqs }}
    - require:
      - cmd: mosquitto-build-exporter-deps-venv-created
{%-   endif %}

mosquitto-build-exporter-program-file-managed:
  file.managed:
    - name: {{ mosquitto.paths.exporter }}
    - source: {{ salt['mosquitto_tofs.files_switch'](
                  ['mosquitto_exporter.py'],
                  lookup='mosquitto-build-exporter-program-file-managed',
                  tplroot=tplroot, saltenv=saltenv) | json }}
    - user: root
    - group: root
    - mode: '0755'
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
# The playbook's "reload the firewall": where the running rules of the zone
# drifted from the permanent ones (someone ran firewall-cmd without
# --permanent), reload so exactly the managed ports are open.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}
{%- set fw = mosquitto.firewall %}
{%- set running = salt['cmd.which']('firewall-cmd') and
                  salt['cmd.retcode']('firewall-cmd --state', python_shell=False, ignore_retcode=True) == 0 %}

{%- if fw.enabled is sameas true or (fw.enabled == 'auto' and running) %}
include:
  - {{ tplroot }}.configure.firewall

{%- set zone = fw.zone %}
mosquitto-runtime-firewall-reloaded:
  cmd.run:
    - name: firewall-cmd --reload
    - unless: >-
        test "$(firewall-cmd --zone={{ zone }} --list-ports; firewall-cmd --zone={{ zone }} --list-services)"
        = "$(firewall-cmd --permanent --zone={{ zone }} --list-ports; firewall-cmd --permanent --zone={{ zone }} --list-services)"
    - require:
      - sls: {{ tplroot }}.configure.firewall
{%- endif %}

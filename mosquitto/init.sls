# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The playbook's three phases, build -> configure -> runtime, each ordered
    after the one before with sls requisites. Each phase's init.sls includes
    that phase's concerns, so a phase can also be applied alone
    (state.apply mosquitto.configure). This file includes the same concerns
    directly rather than the three phase files: each of those would cost
    every run two more master round trips (Salt asks for build.sls before
    build/init.sls) and one more render. test/render/test_phases.py checks
    that both give the same states in the same order. #}
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
include:
  # build/init.sls
  - .build.repo
  - .build.package
  - .build.exporter
  - .build.firewall
  # configure/init.sls
  - .configure.tls
  - .configure.cluster
  - .configure.users
  - .configure.acl
  - .configure.bridges
  - .configure.broker
  - .configure.service
  - .configure.exporter
  - .configure.firewall
  - .configure.selinux
  # runtime/init.sls: the broker as the host's service, or in a container
  - .runtime.{{ 'container' if mosquitto.container.enabled else 'service' }}
  - .runtime.certificate
  - .runtime.renewal
  - .runtime.exporter
  - .runtime.firewall
  - .runtime.cluster

# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo init.sls in reverse: runtime -> configure -> build.
# The CA (tls:ca_cert, tls:ca_key) is kept on purpose: clients trust it and
# a new one would have to be redistributed. Delete it by hand if you mean to.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ '/map.jinja' import mapdata as mosquitto with context %}

{%- set ct = mosquitto.container %}
{%- if ct.enabled %}

{#- Container mode: the container, the network the formula made, and the
    host account it made for the container's uid; the image is kept (an
    operator's image, or shared). No host service or broker package. #}
mosquitto-clean-runtime-container-absent:
  docker_container.absent:
    - name: {{ ct.name }}
    - force: True
{%-   if ct.network != 'host' %}

mosquitto-clean-build-container-network-absent:
  docker_network.absent:
    - name: {{ ct.network }}
    - require:
      - docker_container: mosquitto-clean-runtime-container-absent
{%-   endif %}
{%-   if salt['user.info'](mosquitto.service.user).get('fullname') == 'mosquitto-formula container account' %}

mosquitto-clean-build-container-user-absent:
  user.absent:
    - name: {{ mosquitto.service.user }}
    - require:
      - file: mosquitto-clean-configure-files-absent

mosquitto-clean-build-container-group-absent:
  group.absent:
    - name: {{ mosquitto.service.group }}
    - require:
      - user: mosquitto-clean-build-container-user-absent
{%-   endif %}
{%- else %}

mosquitto-clean-runtime-service-dead:
  service.dead:
    - name: {{ mosquitto.service.name }}
    - enable: False
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}
{%- endif %}

mosquitto-clean-configure-files-absent:
  file.absent:
    - names:
      - {{ mosquitto.paths.conf }}
      - {{ mosquitto.paths.passwd }}
      - {{ mosquitto.paths.acl }}
      - {{ mosquitto.paths.bridges_dir }}
      - {{ mosquitto.tls.cert }}
      - {{ mosquitto.tls.key }}
      - {{ salt['file.dirname'](mosquitto.paths.exporter_secret) }}
      # the service drop-in (systemd) or the init script's limits hook
      - {{ mosquitto.paths.systemd_units }}/{{ mosquitto.service.name }}.service.d/mosquitto-formula.conf
{%- if mosquitto.paths.sysv_limits_hook %}
      - {{ mosquitto.paths.sysv_limits_hook }}
{%- endif %}
    - require:
{%- if ct.enabled %}
      - docker_container: mosquitto-clean-runtime-container-absent
{%- else %}
      - service: mosquitto-clean-runtime-service-dead
{%- endif %}
{#- Container mode installed no broker package; the clients stay (the host
    may run another broker that has them). #}
{%- if not ct.enabled %}

mosquitto-clean-build-package-pkg-removed:
  pkg.removed:
    - pkgs:
{%- for name in [mosquitto.pkg.broker, mosquitto.pkg.clients] if name %}
      - {{ name }}
{%- endfor %}
    - require:
      - file: mosquitto-clean-configure-files-absent
{%- endif %}

{#- The renewal job (runtime.renewal): the cron entry, and under a master
    the minion's schedule entry. #}
mosquitto-clean-runtime-renewal-cron-absent:
  file.absent:
    - name: {{ mosquitto.paths.renew_cron }}
{%- if salt['config.get']('file_client') != 'local' %}

mosquitto-clean-runtime-renewal-schedule-absent:
  schedule.absent:
    - name: mosquitto-tls-renew
    - persist: True
{%- endif %}

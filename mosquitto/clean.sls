# -*- coding: utf-8 -*-
# vim: ft=sls
# Undo init.sls in reverse: runtime -> configure -> build. Everything the
# formula made goes: both services, the exporter's unit or init script,
# settings, program, venv, password and user, the broker's config, password
# file, ACL, server certificate and key, its data and logs, the ports it
# opened in the firewall zone, and the packages it installed.
# Kept on purpose:
#  - the CA (tls:ca_cert, tls:ca_key): clients trust it and a new one would
#    have to be redistributed. Delete it by hand if you mean to;
#  - the broker's system user, made by its package (which keeps it too);
#  - firewalld itself and ssh in the zone (removing them could open the host
#    or lock its operator out), ca-certificates and python3-venv (shared
#    system tools).
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- if mosquitto.swarm.enabled %}
{#- Swarm mode made nothing on this host but its files and the stack. #}
include:
  - .swarm.clean
{%- else %}
{%- set exporter = mosquitto.exporter %}
{%- set fw = mosquitto.firewall %}
{%- set systemd = grains.get('init') == 'systemd' %}
{%- set exporter_unit = mosquitto.paths.systemd_units ~ '/' ~ mosquitto.service.exporter_name ~ '.service' %}
{%- set exporter_init = '/etc/init.d/' ~ mosquitto.service.exporter_name %}
{%- set fw_running = salt['mosquitto_firewall.running']() %}

{#- Stopped and disabled while their unit or init script still exists. #}
mosquitto-clean-runtime-exporter-service-dead:
  service.dead:
    - name: {{ mosquitto.service.exporter_name }}
    - enable: False
{%- if mosquitto.service.provider %}
    - provider: {{ mosquitto.service.provider | json }}
{%- endif %}

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

{%- if fw.enabled is not sameas false and fw_running %}

{#- Only what configure.firewall added (its record, lookup:paths:
    firewall_record), permanent and runtime, without a reload: a port or
    service that was open before the formula came stays, and so does
    everything else in the zone. ssh always stays. A zone without a record
    entry was managed by a formula version that kept none: in exclusive
    mode its ports (the exporter's even if it is disabled now) go, as they
    did then; in shared mode nothing does. #}
mosquitto-clean-configure-firewall-ports-absent:
  mosquitto_firewall.zone_cleaned:
    - name: {{ fw.zone }}
    - record: {{ mosquitto.paths.firewall_record }}
{%-   if fw.mode == 'exclusive' %}
    - fallback_ports: {{ ([mosquitto.ports.mqtts ~ '/tcp', mosquitto.ports.exporter ~ '/tcp'] + fw.extra_ports) | json }}
{%-   endif %}
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
      - {{ mosquitto.paths.exporter_env }}
      - {{ exporter_unit }}
      - {{ exporter_init }}
      - /run/{{ mosquitto.service.exporter_name }}.pid
      - {{ mosquitto.persistence.location }}mosquitto.db
{%- if mosquitto.paths.log_file %}
      - {{ mosquitto.paths.log_file }}
{%- endif %}
{%- if mosquitto.paths.logrotate %}
      # the formula's own rotation (not Debian's: the package owns that one)
      - {{ mosquitto.paths.logrotate }}
{%- endif %}
    - require:
      - service: mosquitto-clean-runtime-exporter-service-dead
{%- if ct.enabled %}
      - docker_container: mosquitto-clean-runtime-container-absent
{%- else %}
      - service: mosquitto-clean-runtime-service-dead
{%- endif %}

{%- if systemd %}

mosquitto-clean-configure-exporter-unit-reloaded:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: mosquitto-clean-configure-files-absent
{%- elif salt['cmd.which']('update-rc.d') %}

{#- Disabling keeps the K links in /etc/rc?.d; with the script gone they go. #}
mosquitto-clean-configure-exporter-init-links-absent:
  cmd.run:
    - name: update-rc.d -f {{ mosquitto.service.exporter_name }} remove
    - onlyif: ls /etc/rc?.d/[SK][0-9][0-9]{{ salt['mosquitto_shell.word'](mosquitto.service.exporter_name, 'mosquitto:lookup:service:exporter_name') }}
    - require:
      - file: mosquitto-clean-configure-files-absent
{%- endif %}

mosquitto-clean-build-exporter-program-absent:
  file.absent:
    - names:
      - {{ mosquitto.paths.exporter }}
      - {{ exporter.venv_dir }}
    - require:
      - service: mosquitto-clean-runtime-exporter-service-dead
{#- Container mode installed no broker package; the clients stay (the host
    may run another broker that has them). #}
{%- if not ct.enabled %}

{#- Purged: the package's conffiles and init script go too. The broker's
    system user stays, as the package leaves it (Debian policy): a later
    test=True run on this host can then still plan files owned by it. #}
mosquitto-clean-build-package-pkg-purged:
  pkg.purged:
    - pkgs:
{%- for name in [mosquitto.pkg.broker, mosquitto.pkg.clients] + mosquitto.pkg.exporter_deps if name %}
      - {{ name }}
{%- endfor %}
    - require:
      - file: mosquitto-clean-configure-files-absent
      - file: mosquitto-clean-build-exporter-program-absent
    - require_in:
      - user: mosquitto-clean-configure-exporter-user-absent
      - cmd: mosquitto-clean-configure-dirs-absent
{%- endif %}

mosquitto-clean-configure-exporter-user-absent:
  user.absent:
    - name: {{ exporter.user }}
    - require:
      - file: mosquitto-clean-build-exporter-program-absent

mosquitto-clean-configure-exporter-group-absent:
  group.absent:
    - name: {{ exporter.user }}
    - require:
      - user: mosquitto-clean-configure-exporter-user-absent

{#- Data, log and run directories once empty (the package's purge empties
    its own; persistence:location may be a directory shared with others,
    so a non-empty one stays). #}
{%- set dirs = [mosquitto.persistence.location, mosquitto.paths.run_dir] %}
{%- if mosquitto.paths.log_file %}
{%-   do dirs.append(salt['file.dirname'](mosquitto.paths.log_file)) %}
{%- endif %}

mosquitto-clean-configure-dirs-absent:
  cmd.run:
    - names:
{#- A shell runs these commands: each directory one safe word. #}
{%- for dir in salt['mosquitto_shell.words'](dirs | map('regex_replace', '/+$', '') | unique | list,
                                             'mosquitto:persistence:location, mosquitto:lookup:paths') %}
      - rmdir {{ dir }}:
        - onlyif: test -d {{ dir }} && test -z "$(ls -A {{ dir }})"
{%- endfor %}
    - require:
      - file: mosquitto-clean-configure-files-absent

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
{%- endif %}

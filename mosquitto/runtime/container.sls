# -*- coding: utf-8 -*-
# vim: ft=sls
# Container mode: the broker runs in a Docker container that the engine
# restarts on failure (container:restart_policy), from the same files a host
# broker reads, bind-mounted read-only at the same paths.
#  - listeners, TLS, persistence, bridges (configure.broker, configure.tls):
#    a change re-creates the container (docker_container's watch);
#  - users and ACLs: SIGHUP to the container, connected clients stay.
# Hardened: the broker runs as container:uid/gid (never root), read-only root
# filesystem, every capability dropped, no-new-privileges, nofile ulimit.
# Host networking by default: the loopback-only plain listener and the
# firewalld zone hold exactly as for a host broker.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set ct = mosquitto.container %}
{%- set tls = mosquitto.tls %}

{#- Directories holding the broker's files; a directory inside another one
    is covered by the outer mount (Salt replaces files by rename, so files
    are mounted through their directories: a file mount would keep showing
    the old inode). #}
{%- set wanted = [] %}
{%- for path in [mosquitto.paths.conf, mosquitto.paths.passwd, mosquitto.paths.acl, tls.ca_cert, tls.cert, tls.key] %}
{%-   do wanted.append(salt['file.dirname'](path)) %}
{%- endfor %}
{#- Bridge files (with their passwords) live in a directory of their own. #}
{%- if mosquitto.paths.get('bridges_dir') %}
{%-   do wanted.append(mosquitto.paths.bridges_dir.rstrip('/')) %}
{%- endif %}
{%- set dirs = [] %}
{%- for dir in wanted | unique | sort %}
{%-   if not dirs or not (dir ~ '/').startswith(dirs[-1] ~ '/') %}
{%-     do dirs.append(dir) %}
{%-   endif %}
{%- endfor %}
{#- Secrets the broker never needs that live inside a mounted directory (the
    CA key, the exporter's password) are hidden by an empty read-only tmpfs. #}
{%- set secrets = ([tls.ca_key] if not tls.ca_server else []) + ([mosquitto.paths.exporter_secret] if mosquitto.exporter.enabled else []) %}
{%- set masks = [] %}
{%- for secret in secrets %}
{%-   set sdir = salt['file.dirname'](secret) %}
{%-   for dir in dirs if (sdir ~ '/').startswith(dir ~ '/') and sdir not in wanted and sdir not in masks %}
{%-     do masks.append(sdir) %}
{%-   endfor %}
{%- endfor %}
{%- set mqtt_host = mosquitto.listeners.mqtt.bind_address or '127.0.0.1' %}
{%- set s = 1000000000 %}
{#- Host mode: nothing here (runtime/init.sls picks runtime.service), also
    when this file is applied on its own. #}
{%- if ct.enabled %}

include:
  # What the container reads (required or watched below); runtime/init.sls
  # brings in the whole configure phase when the runtime phase is applied.
  - {{ tplroot }}.build.container
  - {{ tplroot }}.configure.tls
  - {{ tplroot }}.configure.users
  - {{ tplroot }}.configure.acl
  - {{ tplroot }}.configure.broker

mosquitto-runtime-container-broker-running:
  docker_container.running:
    - name: {{ ct.name }}
    - image: {{ ct.image }}
    - command: ['mosquitto', '-c', {{ mosquitto.paths.conf | json }}]
    - user: '{{ ct.uid }}:{{ ct.gid }}'
    - read_only: True
    - cap_drop: [ALL]
    - security_opt: ['no-new-privileges']
    - ulimits: ['nofile={{ ct.nofile }}:{{ ct.nofile }}']
    - restart_policy: {{ ct.restart_policy }}
    - binds:
{%- for dir in dirs %}
      - {{ dir }}:{{ dir }}:ro
{%- endfor %}
{%- if mosquitto.persistence.enabled %}
{%-   set data = mosquitto.persistence.location.rstrip('/') %}
      - {{ data }}:{{ data }}:rw
{%- endif %}
{%- if masks %}
    - tmpfs:
{%-   for dir in masks %}
      - {{ dir }}: ro,nosuid,nodev,noexec,size=4k,mode=0000
{%-   endfor %}
{%- endif %}
    # Alive = the plain listener answers an MQTT CONNECT: an anonymous one
    # is refused with CONNACK "not authorised", which mosquitto_sub reports
    # as exit code 5 (no answer at all is 1). No credential is needed.
    - healthcheck:
        test:
          - CMD-SHELL
          - >-
            mosquitto_sub -h {{ mqtt_host }} -p {{ mosquitto.ports.mqtt }} -t health -C 1 -W 3
            -i mosquitto-healthcheck >/dev/null 2>&1; [ $? -eq 5 ]
        interval: {{ ct.healthcheck.interval * s }}
        timeout: {{ ct.healthcheck.timeout * s }}
        retries: {{ ct.healthcheck.retries }}
        start_period: {{ ct.healthcheck.start_period * s }}
{%- if ct.network == 'host' %}
    - network_mode: host
{%- else %}
    # Created on that network (not on the engine's default, then moved).
    # The broker's domain is its alias there: other containers on the
    # network (cluster spokes, bridges) reach it by the name its
    # certificate holds, through the engine's DNS.
    - network_mode: {{ ct.network }}
    - networks:
      - {{ ct.network }}:
{%-   if ct.ip %}
        - ipv4_address: {{ ct.ip }}
{%-   endif %}
{%-   if mosquitto.domain and not (mosquitto.domain | is_ip) %}
        - aliases: [{{ mosquitto.domain | json }}]
{%-   endif %}
{%-   if ct.publish %}
    - port_bindings: {{ ct.publish | json }}
{%-   endif %}
{%- endif %}
    - require:
      - sls: {{ tplroot }}.build.container
      - sls: {{ tplroot }}.configure.tls
      - sls: {{ tplroot }}.configure.users
      - sls: {{ tplroot }}.configure.acl
      - sls: {{ tplroot }}.configure.broker

{#- A restart of the same container (docker_container's watch would
    re-create it). A changed image, uid or any other container setting
    re-creates it above. #}
mosquitto-runtime-container-broker-restarted:
  module.run:
    - docker.restart:
      - name: {{ ct.name }}
    - require:
      - docker_container: mosquitto-runtime-container-broker-running
    - onchanges:
      - sls: {{ tplroot }}.configure.broker
      - sls: {{ tplroot }}.configure.tls

{#- SIGHUP from inside the container's namespaces (nsenter; the broker is
    its PID 1), not through the engine's kill API: Docker 20.10 marks a
    container signalled that way as "manually stopped", and restart policy
    unless-stopped then no longer restarts it after a crash. A non-zero exit
    fails the state (run_all's retcode). #}
mosquitto-runtime-container-broker-reloaded:
  module.run:
    - docker.run_all:
      - name: {{ ct.name }}
      - cmd: sh -c 'kill -HUP 1'
      - exec_driver: nsenter
    - require:
      - module: mosquitto-runtime-container-broker-restarted
    - onchanges:
      - sls: {{ tplroot }}.configure.users
      - sls: {{ tplroot }}.configure.acl

{#- Host networking: the listeners are the host's. On a named network the
    TLS listener is checked at the container's fixed address, if it has one. #}
{%- if ct.network == 'host' %}
{%-   set ports = [[mqtt_host, mosquitto.ports.mqtt], [mosquitto.listeners.mqtts.bind_address or '127.0.0.1', mosquitto.ports.mqtts]] %}
{%- elif ct.ip %}
{%-   set ports = [[ct.ip, mosquitto.ports.mqtts]] %}
{%- else %}
{%-   set ports = [] %}
{%- endif %}
{%- if ports %}

mosquitto-runtime-container-broker-listening:
  mosquitto_broker.listening:
    - name: {{ ct.name }}
    - ports: {{ ports | json }}
    - require:
      - module: mosquitto-runtime-container-broker-reloaded
{%- endif %}
{%- endif %}

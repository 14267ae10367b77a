# -*- coding: utf-8 -*-
# vim: ft=sls
# SELinux (RedHat hosts where grains selinux:enabled): the directories the
# formula fills get the labels of the loaded policy (restorecon), checked
# every run and changed only where a label differs.
#  - Ports need no labels. RHEL 9's targeted policy has no port type for
#    1883, 8883 or 9234 (unreserved_port_t, like any port 1024-32767) and
#    no mosquitto module: systemd starts /usr/sbin/mosquitto and the
#    exporter's python (bin_t) in unconfined_service_t, which may bind any
#    port. README "RedHat" has the sources and what changes for an operator
#    who confines them with a policy of their own.
#  - Files: Salt's file.managed relabels what it writes when enforcing;
#    the files the formula's own modules write (password file, keys,
#    certificates, secrets: created in place, atomically), the directories
#    file.directory makes, the broker's database and log and the exporter's
#    venv (python -m venv) get their directory's label on creation, which
#    the policy may set otherwise (the venv's bin/ is bin_t). Hence one
#    restorecon -R per directory the formula owns; directories shared with
#    the rest of the system are never relabelled whole.
#  - Container mode is left out: bind mounts into a container need the
#    container_file_t label (or :z), which the operator decides.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}
{%- set dirname = salt['file.dirname'] %}
{%- set paths = mosquitto.paths %}
{%- set tls = mosquitto.tls %}
{%- set shared = ['/', '/etc', '/var', '/var/lib', '/var/log', '/run', '/opt', '/srv', '/usr', '/usr/local',
                  '/usr/local/sbin', '/usr/local/bin', '/etc/systemd/system', '/etc/cron.d', '/etc/default',
                  '/etc/sysconfig', '/etc/pki', '/etc/ssl'] %}
{%- set wanted = [dirname(paths.conf), dirname(paths.passwd), dirname(paths.acl), paths.bridges_dir,
                  dirname(tls.cert), dirname(tls.key), dirname(tls.ca_cert)] %}
{%- if not tls.ca_server %}
{%-   do wanted.append(dirname(tls.ca_key)) %}
{%- endif %}
{%- if mosquitto.persistence.enabled %}
{%-   do wanted.append(mosquitto.persistence.location) %}
{%- endif %}
{%- if paths.log_file %}
{%-   do wanted.append(dirname(paths.log_file)) %}
{%- endif %}
{%- if mosquitto.exporter.enabled %}
{%-   do wanted.append(dirname(paths.exporter_secret)) %}
{%-   if mosquitto.exporter.install == 'venv' %}
{%-     do wanted.append(mosquitto.exporter.venv_dir) %}
{%-   endif %}
{%- endif %}
{%- if mosquitto.cluster.role == 'spoke' %}
{%-   do wanted.append(dirname(paths.cluster_secret)) %}
{%- endif %}
{#- Each directory once, none inside another one of the list, no shared one
    (sorted, a directory comes before those inside it). #}
{%- set trees = [] %}
{%- for path in wanted | map('regex_replace', '/+$', '') | unique | sort %}
{%-   set inside = [] %}
{%-   for tree in trees if path.startswith(tree ~ '/') %}
{%-     do inside.append(tree) %}
{%-   endfor %}
{%-   if path and path not in shared and not inside %}
{%-     do trees.append(path) %}
{%-   endif %}
{%- endfor %}
{#- The SLS files that write there (each has states whenever it is listed). #}
{%- set writers = ['configure.tls', 'configure.users', 'configure.acl', 'configure.bridges', 'configure.broker'] %}
{%- if mosquitto.exporter.enabled %}
{%-   do writers.extend(['build.exporter', 'configure.exporter']) %}
{%- endif %}
{%- if mosquitto.cluster.role == 'spoke' %}
{%-   do writers.append('configure.cluster') %}
{%- endif %}

{%- if grains.get('selinux', {}).get('enabled') and not mosquitto.container.enabled %}
include:
{%-   for sls in writers %}
  - {{ tplroot }}.{{ sls }}
{%-   endfor %}
{%-   for tree in trees %}

mosquitto-configure-selinux-{{ tree | replace('/', '-') | trim('-') }}-labelled:
  selinux.fcontext_policy_applied:
    - name: {{ tree | json }}
    - recursive: True
    # Not there (yet) on this host, e.g. under test=True: nothing to label.
    - onlyif:
      - fun: file.directory_exists
        path: {{ tree | json }}
    - require:
{%-     for sls in writers %}
      - sls: {{ tplroot }}.{{ sls }}
{%-     endfor %}
{%-   endfor %}
{%- endif %}

# -*- coding: utf-8 -*-
# vim: ft=sls
# Bridges to other brokers: one `connection` section per file in a
# directory of the formula's own, which mosquitto.conf includes. Their
# passwords are read from pillar by key while the state runs, so they are
# never state arguments, template context or a diff; the state reports
# only which bridges changed. Bridges are read at start only: runtime.service
# restarts the broker when this changes.
{%- set tplroot = tpldir.split('/')[0] %}
{%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) if 'mosquitto_map.data' in salt
      else raise('mosquitto formula: custom modules are not synced; '
                 'run "saltutil.sync_all" (or state.apply with sync_mods=all) first') %}

{%- set bridges = {} %}
{%- for name, bridge in mosquitto.bridges.items() %}
{%-   set spec = {} %}
{%-   for key, value in bridge.items() if key != 'remote_password' %}
{%-     do spec.update({key: value}) %}
{%-   endfor %}
{%-   if 'remote_password' in bridge %}
{#-     Bridge names never hold ':' (validated). #}
{%-     do spec.update({'remote_password_pillar': 'mosquitto:bridges:' ~ name ~ ':remote_password'}) %}
{%-   endif %}
{%-   do bridges.update({name: spec}) %}
{%- endfor %}
{#- A cluster spoke's bridge to the hub (address from the mine, password
    from the spoke's own secret: both read while the state runs). #}
{%- set cluster = mosquitto.cluster %}
{%- if cluster.role == 'spoke' %}
{%-   set cluster_bridge = {
        'hub': cluster.hub, 'bridge': cluster.bridge, 'topics': cluster.topic_lines,
        'username': cluster.username, 'remote_clientid': cluster.remote_clientid,
        'keepalive_interval': cluster.keepalive_interval,
        'restart_timeout': cluster.restart_timeout,
        'secret_file': mosquitto.paths.cluster_secret} %}
{%- endif %}

include:
  - {{ tplroot }}.build.package
{%- if cluster.role == 'spoke' %}
  - {{ tplroot }}.configure.cluster
{%- endif %}

mosquitto-configure-bridges-dir-managed:
  file.directory:
    - name: {{ mosquitto.paths.bridges_dir }}
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0750'
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.build.package

mosquitto-configure-bridges-bridge-managed:
  mosquitto_bridge.managed:
    - name: {{ mosquitto.paths.bridges_dir }}
    - bridges: {{ bridges | json }}
    - ca_cert: {{ mosquitto.tls.ca_cert }}
    - tls_version: {{ mosquitto.listeners.mqtts.tls_version }}
    - user: root
    - group: {{ mosquitto.service.group }}
    - mode: '0640'
{%- if cluster.role == 'spoke' %}
    - cluster: {{ cluster_bridge | json }}
{%- endif %}
    - require:
      - file: mosquitto-configure-bridges-dir-managed
{%- if cluster.role == 'spoke' %}
      - mosquitto_passwd: mosquitto-configure-cluster-secret-present
{%- endif %}

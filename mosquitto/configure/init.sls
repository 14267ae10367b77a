# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .tls
  - .users
  - .acl
  - .broker
  - .service
  - .exporter
  - .firewall

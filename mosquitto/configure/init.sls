# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .tls
  - .users
  - .acl
  - .bridges
  - .broker
  - .exporter
  - .firewall

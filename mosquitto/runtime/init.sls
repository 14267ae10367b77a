# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .service
  - .exporter
  - .firewall

# -*- coding: utf-8 -*-
# vim: ft=sls
# The playbook's three phases; each orders itself after the one before with
# sls requisites, so any phase can also be applied on its own.
include:
  - .build
  - .configure
  - .runtime

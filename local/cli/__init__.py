"""The command line of the local role: one module per command group, a thin shell over the actions.

``main.py`` builds the parser from the command modules; every option comes from the one table in
:mod:`remote.contract.options`.
"""

"""Remote (training-machine) role: write the eval manifest and pack results into bundles.

Standard library only, Python >= 3.9: clusters have old Pythons and no pip access.
"""

__version__ = "0.1.0"

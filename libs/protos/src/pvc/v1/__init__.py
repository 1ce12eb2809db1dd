# Generated from protos/pvc/v1 by `make proto`. Do not edit.

"""zeus.integrations"""

"""biospike.deploy"""

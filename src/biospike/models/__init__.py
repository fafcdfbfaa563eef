"""biospike.models"""

"""biospike.attacks"""

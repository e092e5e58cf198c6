"""SMS gateway drivers, one module per family, and their registry.

``base`` holds the port (``SmsGateway``) and its data; ``registry.build_gateway`` builds a driver.
Nothing is imported here so that importing one driver does not import all of them.
"""

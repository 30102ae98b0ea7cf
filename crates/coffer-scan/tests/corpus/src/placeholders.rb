# Every value here is a placeholder and must not be reported.
password = "changeme"
secret = "${SECRET}"
token = "xxxxxxxxxxxx"
api_key = "{{ api_key }}"
password = "<your-password>"
password = ENV.fetch("PASSWORD")
db_url = "postgres://user:password@localhost/dev"

package main

import (
	"database/sql"
	"os"
)

const dsn = "postgres://app:Pg-Pr0d-9xQ2@db.internal:5432/app?sslmode=require"

func open() (*sql.DB, error) {
	password := os.Getenv("DB_PASSWORD") // not a secret: read at run time
	_ = password
	return sql.Open("postgres", dsn)
}

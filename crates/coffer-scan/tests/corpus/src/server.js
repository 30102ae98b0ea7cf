const express = require("express");

const githubToken = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
const session = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjb2ZmZXIiLCJyb2xlIjoiYWRtaW4ifQ.Qm9ndXNTaWduYXR1cmVGb3JUZXN0czEyMw";

// Not secrets.
const token = process.env.GITHUB_TOKEN;
const password = `${process.env.DB_PASSWORD}`;
const passwordField = "password";

module.exports = { githubToken, session, token, password, passwordField, express };

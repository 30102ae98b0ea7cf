package example;

public class Config {
    private String dbPassword = "J4va-Pr0d-Pa55";
    private String slack = "xoxb-2048301772-5829301847-nXsiVpzz63FfkCzJr4i0B3Jr";
    private String passwordHint = "at least 12 characters";
    private String adminPassword = "changeme";
}

using System.Data.SqlClient;

// The guide's own example of what not to do.
public class Db
{
    string password = "MyStrongPassword";

    public SqlConnection Open(string user) => new SqlConnection($"User Id={user};");
}
